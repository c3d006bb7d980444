// Prometheus metrics for hearth, on a Registry of our own (never prom-client's global one, so two
// gateways in one test process do not collide). Callers get small typed handles; when metrics are
// disabled every handle is a shared no-op object, so instrumented hot paths cost one empty call.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TokenRate } from './token-rate.ts';

export type Labels<L extends string> = Readonly<Record<L, string | number>>;

export interface CounterHandle {
  inc(n?: number): void;
}
export interface LabeledCounterHandle<L extends string> {
  inc(labels: Labels<L>, n?: number): void;
}
export interface GaugeHandle {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
}
export interface LabeledGaugeHandle<L extends string> {
  set(labels: Labels<L>, v: number): void;
  /** Drops a series, e.g. a worker that left the cluster. */
  remove(labels: Labels<L>): void;
}
export interface HistogramHandle {
  observe(seconds: number): void;
}
export interface LabeledHistogramHandle<L extends string> {
  observe(labels: Labels<L>, seconds: number): void;
}

/** Times one generation stream: TTFT on the first token, inter-token latency after it. */
export interface StreamTimer {
  /** Call when `n` tokens (usually 1) were produced for this stream. */
  token(n?: number): void;
}

export interface Metrics {
  readonly enabled: boolean;
  readonly registry: Registry;
  /** hearth_requests_total{route,status}: HTTP requests answered (route = the route pattern). */
  readonly requests: LabeledCounterHandle<'route' | 'status'>;
  /** hearth_errors_total{code}: errors by HEARTH_ERR_* code (including mid-stream ones). */
  readonly errors: LabeledCounterHandle<'code'>;
  /** hearth_time_to_first_token_seconds. */
  readonly timeToFirstToken: HistogramHandle;
  /** hearth_inter_token_latency_seconds. */
  readonly interTokenLatency: HistogramHandle;
  /** hearth_generated_tokens_total (also feeds hearth_tokens_per_second). */
  readonly generatedTokens: CounterHandle;
  /** hearth_tokens_per_second: generated tokens over the last 10 s, computed at scrape time. */
  readonly tokensPerSecond: { get(): number };
  /** hearth_queue_depth: requests waiting for a sequence slot. */
  readonly queueDepth: GaugeHandle;
  /** hearth_running_sequences: sequences being decoded. */
  readonly runningSequences: GaugeHandle;
  /** hearth_stage_step_seconds{node,stage}: one pipeline step on one stage. */
  readonly stageStep: LabeledHistogramHandle<'node' | 'stage'>;
  /** hearth_hop_latency_seconds: activations from one stage to the next over the bus. */
  readonly hopLatency: HistogramHandle;
  /** hearth_kv_bytes{node}: KV cache bytes held by each worker. */
  readonly kvBytes: LabeledGaugeHandle<'node'>;
  /** hearth_plan_epoch: the current plan's epoch (bumps on every join/loss). */
  readonly planEpoch: GaugeHandle;
  /** Speculative decoding (issue 11), from the scheduler's cumulative counts:
   *  hearth_speculative_drafted_tokens_total, hearth_speculative_accepted_tokens_total,
   *  hearth_decode_passes_total and hearth_decode_passes_per_token (passes ÷ tokens they emitted;
   *  1 without speculation, lower the more drafts are accepted). */
  readonly speculation: { record(totals: SpeculationTotals): void };
  /** hearth_spot_checks_total{node,result}: stage outputs the gateway recomputed and compared
   *  (result pass|fail); a fail drops the node (issue 14). */
  readonly spotChecks: LabeledCounterHandle<'node' | 'result'>;
  /** Starts timing one stream; its token() calls fill TTFT, ITL and generated tokens. */
  streamTimer(startedAt?: number): StreamTimer;
  /** Prometheus text exposition of everything in the registry. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

/** Cumulative counts since start (the scheduler's SpeculationStats). */
export interface SpeculationTotals {
  readonly passes: number;
  readonly tokens: number;
  readonly drafted: number;
  readonly accepted: number;
}

export interface CreateMetricsOptions {
  /** false → no-op handles and an empty registry (config metrics.enabled). */
  enabled?: boolean;
  /** Also export Node process metrics (cpu, memory, event loop lag). Default true. */
  processMetrics?: boolean;
  /** Clock in milliseconds; tests pass a fake one. */
  now?: () => number;
}

// Buckets span what a CPU cluster of home devices sees: sub-ms hops on loopback up to seconds
// for a first token behind a long prompt on a Raspberry Pi.
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const STEP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const HOP_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

const noop = (): void => {};
const NOOP_COUNTER = { inc: noop } as const;
const NOOP_GAUGE = { set: noop, inc: noop, dec: noop, remove: noop } as const;
const NOOP_HISTOGRAM = { observe: noop } as const;
const NOOP_TIMER: StreamTimer = { token: noop };

export function createMetrics(opts: CreateMetricsOptions = {}): Metrics {
  const registry = new Registry();
  const now = opts.now ?? ((): number => performance.now());
  if (opts.enabled === false) {
    return {
      enabled: false,
      registry,
      requests: NOOP_COUNTER,
      errors: NOOP_COUNTER,
      timeToFirstToken: NOOP_HISTOGRAM,
      interTokenLatency: NOOP_HISTOGRAM,
      generatedTokens: NOOP_COUNTER,
      tokensPerSecond: { get: () => 0 },
      queueDepth: NOOP_GAUGE,
      runningSequences: NOOP_GAUGE,
      stageStep: NOOP_HISTOGRAM,
      hopLatency: NOOP_HISTOGRAM,
      kvBytes: NOOP_GAUGE,
      planEpoch: NOOP_GAUGE,
      speculation: { record: noop },
      spotChecks: NOOP_COUNTER,
      streamTimer: () => NOOP_TIMER,
      scrape: () => registry.metrics(),
      contentType: registry.contentType,
    };
  }
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'hearth_' });
  const registers = [registry];

  const requests = new Counter({ name: 'hearth_requests_total', help: 'HTTP requests answered, by route pattern and status code.', labelNames: ['route', 'status'] as const, registers });
  const spotChecks = new Counter({ name: 'hearth_spot_checks_total', help: 'Stage outputs the gateway recomputed and compared, by node and result (pass|fail); a fail drops the node.', labelNames: ['node', 'result'] as const, registers });
  const errors = new Counter({ name: 'hearth_errors_total', help: 'Errors by HEARTH_ERR_* code.', labelNames: ['code'] as const, registers });
  const ttft = new Histogram({ name: 'hearth_time_to_first_token_seconds', help: 'Time from request admission to the first generated token.', buckets: TTFT_BUCKETS, registers });
  const itl = new Histogram({ name: 'hearth_inter_token_latency_seconds', help: 'Time between consecutive tokens of one stream.', buckets: STEP_BUCKETS, registers });
  const generated = new Counter({ name: 'hearth_generated_tokens_total', help: 'Completion tokens generated.', registers });
  const rate = new TokenRate(10, now);
  new Gauge({
    name: 'hearth_tokens_per_second',
    help: 'Completion tokens per second over the last 10 s, all streams together.',
    registers,
    collect() {
      this.set(rate.perSecond());
    },
  });
  const queueDepth = new Gauge({ name: 'hearth_queue_depth', help: 'Requests waiting for a sequence slot.', registers });
  const running = new Gauge({ name: 'hearth_running_sequences', help: 'Sequences being decoded now.', registers });
  const stageStep = new Histogram({ name: 'hearth_stage_step_seconds', help: 'Duration of one pipeline step on one stage.', labelNames: ['node', 'stage'] as const, buckets: STEP_BUCKETS, registers });
  const hop = new Histogram({ name: 'hearth_hop_latency_seconds', help: 'Activation transfer time from one stage to the next.', buckets: HOP_BUCKETS, registers });
  const kv = new Gauge({ name: 'hearth_kv_bytes', help: 'KV cache bytes held by each worker.', labelNames: ['node'] as const, registers });
  const epoch = new Gauge({ name: 'hearth_plan_epoch', help: 'Epoch of the current partition plan.', registers });
  const drafted = new Counter({ name: 'hearth_speculative_drafted_tokens_total', help: 'Draft tokens sent for verification (speculative decoding).', registers });
  const accepted = new Counter({ name: 'hearth_speculative_accepted_tokens_total', help: 'Draft tokens the model agreed with (each saved a pipeline pass).', registers });
  const passes = new Counter({ name: 'hearth_decode_passes_total', help: 'Decode passes through the pipeline (a verify step is one).', registers });
  let seen: SpeculationTotals = { passes: 0, tokens: 0, drafted: 0, accepted: 0 };
  new Gauge({
    name: 'hearth_decode_passes_per_token',
    help: 'Decode passes per generated token since start (1 without speculation).',
    registers,
    collect() {
      this.set(seen.tokens > 0 ? seen.passes / seen.tokens : 1);
    },
  });
  const speculation = {
    record(t: SpeculationTotals): void {
      // Counters only go up: add what grew since the last record.
      if (t.drafted > seen.drafted) drafted.inc(t.drafted - seen.drafted);
      if (t.accepted > seen.accepted) accepted.inc(t.accepted - seen.accepted);
      if (t.passes > seen.passes) passes.inc(t.passes - seen.passes);
      seen = { ...t };
    },
  };

  const generatedTokens: CounterHandle = {
    inc(n = 1) {
      generated.inc(n);
      rate.add(n);
    },
  };
  const timeToFirstToken: HistogramHandle = { observe: (s) => ttft.observe(s) };
  const interTokenLatency: HistogramHandle = { observe: (s) => itl.observe(s) };

  return {
    enabled: true,
    registry,
    requests: { inc: (labels, n = 1) => requests.inc(labels, n) },
    errors: { inc: (labels, n = 1) => errors.inc(labels, n) },
    timeToFirstToken,
    interTokenLatency,
    generatedTokens,
    tokensPerSecond: { get: () => rate.perSecond() },
    queueDepth: { set: (v) => queueDepth.set(v), inc: (n = 1) => queueDepth.inc(n), dec: (n = 1) => queueDepth.dec(n) },
    runningSequences: { set: (v) => running.set(v), inc: (n = 1) => running.inc(n), dec: (n = 1) => running.dec(n) },
    stageStep: { observe: (labels, s) => stageStep.observe(labels, s) },
    hopLatency: { observe: (s) => hop.observe(s) },
    kvBytes: { set: (labels, v) => kv.set(labels, v), remove: (labels) => kv.remove(labels) },
    planEpoch: { set: (v) => epoch.set(v), inc: (n = 1) => epoch.inc(n), dec: (n = 1) => epoch.dec(n) },
    speculation,
    spotChecks: { inc: (labels, n = 1) => spotChecks.inc(labels, n) },
    streamTimer(startedAt = now()) {
      let last = startedAt;
      let first = true;
      return {
        token(n = 1) {
          const t = now();
          const dt = (t - last) / 1000;
          if (first) timeToFirstToken.observe(dt);
          else interTokenLatency.observe(dt);
          first = false;
          last = t;
          generatedTokens.inc(n);
        },
      };
    },
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
