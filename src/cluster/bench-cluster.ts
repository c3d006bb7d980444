// `hearth bench --cluster`: what the cluster costs and what pipelining buys, measured in one run
// on one machine. Prints ratios, not absolute speeds, because the machine (and its other load)
// changes between runs while both sides of a ratio share the same conditions.
//
//  1. one process: the model as one stage, one stream (the baseline), in this process;
//  2. the same model split over 2 worker processes over a private nats-server: 1 stream, then
//     8 and 16 concurrent streams (decode steps of different sequences batch on each stage, and
//     both stages work at once), with the share of tokens whose step the last stage chained
//     straight to stage 0 (two hops per token);
//  3. hop latency (sender stamp → receiver) p50/p99 seen in those runs;
//  and, to tell the cost of splitting from the cost of the relay, the same 2-stage split with
//  both stages in this process (no NATS);
//  then 2–3 again with a delay added before every hop (default 2 ms: a LAN, not loopback).
//  Each figure is the best of `rounds` runs; every round runs the one process and the cluster at
//  every delay, so each ratio compares runs made minutes apart at most.
//  4. memory (issue 20 item 7): each worker's peak resident set (VmHWM from /proc/<pid>/status)
//     against what the planner counts it holds (weights as built + the KV of the positions its
//     sequences held at most), with issue 20's bound 1.3 × (weights + KV) + 150 MB; the bench
//     process's own (the gateway, before and after it loads the in-process baselines);
//  5. stage balance: the median ms each stage spent per single-stream step, slowest ÷ fastest.
//
// It drives the scheduler (scheduler → cluster is the usual direction; this harness sits above
// both, like the CLI that calls it).
//
// Threads: each worker gets `threads` intra-op threads, and so does the one-process baseline:
// the ratio isolates the relay's cost from how many cores a stage can use.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { NatsBus } from '../bus/index.ts';
import { openCheckpoint } from '../model/index.ts';
import type { Quant } from '../runtime/types.ts';
import { GREEDY } from '../sampling/types.ts';
import { createShardEngine } from '../runtime/index.ts';
import { LocalPipeline, createScheduler } from '../scheduler/index.ts';
import { StageRunner } from '../worker/stage-runner.ts';
import type { Generator } from '../scheduler/types.ts';
import { createClusterPipeline, type ClusterPipeline } from './cluster-pipeline.ts';
import { kvBytesPerLayer, modelCostsFromCheckpoint, stageWeightBytes } from './model-costs.ts';
import type { ModelCost } from './planner.ts';
import { readFileSync } from 'node:fs';
import { startNatsServer } from './nats-server.ts';
import { SpotChecker } from '../trust/spot-check.ts';
import { toleranceFor } from '../trust/compare.ts';

export interface BenchClusterOptions {
  readonly modelDir: string;
  readonly quant?: Quant;
  /** Intra-op threads per worker and for the baseline (default 1). */
  readonly threads?: number;
  /** Prompt tokens per stream (default 16). */
  readonly promptTokens?: number;
  /** Decode tokens per stream (default 64). */
  readonly decodeTokens?: number;
  /** Concurrent streams of the aggregate runs, one run per count (default [8, 16]). */
  readonly streams?: number | readonly number[];
  /** Hop delays to run (default [0, 2]). */
  readonly hopDelaysMs?: readonly number[];
  /** Measurement rounds, interleaved between one process and the cluster; the best of each is
   *  kept, since other load on the machine only ever slows a run down (default 3). */
  readonly rounds?: number;
  /** Progress lines (default: none). */
  readonly onProgress?: (line: string) => void;
  /** Spot-checking rates to measure beside the unchecked cluster (issue 14; default none): at
   *  hop delay 0, 1 and N streams again with the gateway checking that fraction of sequences. */
  readonly spotCheckRates?: readonly number[];
}

export interface BenchSpotCheckRow {
  readonly rate: number;
  readonly clusterTokS: number;
  readonly aggregateTokS: number;
  /** Checked ÷ unchecked, 1 stream and N streams, measured in the same rounds. */
  readonly singleRatio: number;
  readonly aggregateRatio: number;
  /** Sequences the gateway checked over those runs, of how many. */
  readonly checkedSequences: number;
  readonly sequences: number;
  /** Comparisons made and failed (a failure drops a node: the figures are then not comparable). */
  readonly comparisons: number;
  readonly failures: number;
}

export interface BenchClusterRow {
  readonly hopDelayMs: number;
  readonly oneProcessTokS: number;
  /** The same 2-stage split as the cluster, both stages in this process (no NATS): separates the
   *  cost of splitting the model from the cost of the relay. */
  readonly inProcessSplitTokS: number;
  readonly clusterTokS: number;
  /** clusterTokS / oneProcessTokS (goal ≥ 0.90 at 0 ms). */
  readonly clusterRatio: number;
  /** The first of `multi` (kept for readers of the older JSON). */
  readonly streams: number;
  readonly aggregateTokS: number;
  readonly concurrencyRatio: number;
  /** Per stream count: aggregate decode tok/s over 2 workers, and ÷ the single stream over the
   *  same 2 workers (goals: 8 → ≥ 3.0, 16 → ≥ 4.0). */
  readonly multi: readonly {
    readonly streams: number;
    /** While all N decode (see measureDecode). */
    readonly tokS: number;
    readonly ratio: number;
    /** Counting from the first stream's first token, so the other prompts' prefill is inside. */
    readonly withRampTokS: number;
  }[];
  /** clusterTokS at this delay ÷ clusterTokS at the first (0 ms) delay (goal at 2 ms: ≥ 0.85). */
  readonly vsNoDelay: number;
  /** Tokens that came back from steps the last stage chained (two hops per token) ÷ all. */
  readonly chainedShare: number;
  readonly hopP50Ms: number;
  readonly hopP99Ms: number;
  readonly hops: number;
  /** Median time a single-stream step spent on each stage (receive → publish onward). */
  readonly stageP50Ms: readonly number[];
}

/** One process's memory over the run (issue 20 item 7). Bytes; null where /proc cannot say. */
export interface BenchNodeMemory {
  /** Worker name (w1, w2), or 'gateway' for the bench process. */
  readonly node: string;
  readonly range: readonly [number, number] | null;
  /** VmHWM of the process: the most it was ever resident. */
  readonly peakRssBytes: number | null;
  /** Planner: its stage's weights as built, prepacked int4 block sums included. */
  readonly weightBytes: number;
  /** Planner: KV of the most positions its sequences held at once in the cluster runs. */
  readonly kvInUseBytes: number;
  /** What the node reported it held (heartbeats; spare capacity included), at most. */
  readonly kvHeldPeakBytes: number;
  /** Issue 20's bound for a worker: 1.3 × (weights + KV in use) + 150 MB. */
  readonly boundBytes: number;
  /** The gateway only: its peak before the in-process baselines (the one-process model and the
   *  in-process split) were loaded into the same process; peakRssBytes then includes them. */
  readonly peakBeforeBaselinesBytes?: number | null;
}

export interface BenchStageBalance {
  readonly range: readonly [number, number];
  readonly node: string;
  /** Median ms a single-stream step spent on the stage (receive → publish onward), at hop delay 0. */
  readonly msPerStep: number;
}

export interface BenchClusterResult {
  readonly model: string;
  readonly quant: Quant;
  readonly threads: number;
  readonly workers: 2;
  readonly promptTokens: number;
  readonly decodeTokens: number;
  readonly stages: readonly (readonly [number, number])[];
  readonly rows: readonly BenchClusterRow[];
  readonly spotCheck?: readonly BenchSpotCheckRow[];
  /** Most positions (prompt + generated, all streams together) in flight at once in the cluster runs. */
  readonly peakPositions: number;
  readonly memory: readonly BenchNodeMemory[];
  readonly balance: readonly BenchStageBalance[];
  /** Slowest stage's ms per step ÷ the fastest's (1 = balanced). */
  readonly balanceRatio: number;
}

/** VmHWM (peak resident set) of a process from /proc/<pid>/status, in bytes; null off Linux or
 *  once the process is gone. Read while the workers still run: an exited process has no status. */
export function peakRssBytes(pid: number | 'self' | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** Positions in flight across the cluster's streams: each stage holds KV for all of them. */
interface PositionGauge { now: number; peak: number }

const MB = 1024 * 1024;
/** Issue 20's "must show" bound on a worker's peak RSS. */
export function rssBound(weightBytes: number, kvBytes: number): number {
  return 1.3 * (weightBytes + kvBytes) + 150 * MB;
}

/** Bytes per KV element as the engine picks them (HEARTH_KV_DTYPE; see shard-session.ts). */
function kvElementBytes(): number {
  return process.env['HEARTH_KV_DTYPE'] === 'float16' ? 2 : 4;
}

function plannedWeightBytes(cost: ModelCost, start: number, end: number): number {
  let b = stageWeightBytes(cost, start, end);
  for (let i = start; i < end; i++) b += cost.layerPrepackBytes?.[i] ?? 0;
  if (end === cost.numLayers) b += cost.lastPrepackBytes ?? 0;
  return b;
}

const BIN = fileURLToPath(new URL('../../bin/hearth.js', import.meta.url));

/** What decodeRate measured: the steady rate, and the rate over the ramp as well. */
export interface DecodeRate {
  /** Tokens per second while every stream decodes: from the moment the last stream's first token
   *  came (every prompt prefilled) until the first stream has made `decode` more. */
  readonly steady: number;
  /** The same tokens, plus those made while other streams' prompts were still being prefilled,
   *  over the time from the first stream's first token (what a burst of new requests sees). */
  readonly withRamp: number;
}

/**
 * Aggregate decode tok/s of `streams` concurrent greedy streams. A single stream's figure counts
 * its tokens after the first (its prompt excluded); for N streams the same rule is the steady
 * window: once every stream has its first token, count all streams' tokens until one of them has
 * made `decode` more. Counting from the first stream's first token instead would put the other
 * streams' prompts (N × prompt positions of prefill) inside a decode figure, which the single
 * stream it is divided by does not carry; that figure is returned too (withRamp).
 */
async function measureDecode(g: Generator, prompt: Int32Array, decode: number, streams: number, tag: string, gauge?: PositionGauge): Promise<DecodeRate> {
  const firsts: number[] = [];
  let steadyFrom = Infinity;
  let steadyTo = Infinity;
  let steadyTokens = 0;
  let rampTokens = 0;
  let started = 0;
  await Promise.all(Array.from({ length: streams }, async (_, k) => {
    // Distinct prompts: no prefix reuse, no identical work.
    const p = prompt.map((x, i) => (i === 0 ? (x + k) % 1000 : x));
    let n = 0;
    let after = 0;
    let held = 0;
    const hold = (k: number): void => {
      if (gauge === undefined) return;
      held += k;
      gauge.now += k;
      gauge.peak = Math.max(gauge.peak, gauge.now);
    };
    // Room for the ramp: a stream stops itself once it has `decode` tokens in the steady window.
    const maxTokens = streams === 1 ? decode + 1 : decode * 4 + prompt.length * streams;
    try {
      for await (const ev of g.generate({ id: `${tag}-${k}`, prompt: p, maxTokens, sampling: GREEDY, stopTokens: [] })) {
        if (ev.type !== 'token') continue;
        const now = performance.now();
        n++;
        // The first token means the prompt's positions are in every stage's KV; each later one, one more.
        hold(n === 1 ? p.length : 1);
        if (n === 1) {
          firsts.push(now);
          if (++started === streams) steadyFrom = now;
          if (streams > 1) continue;
          steadyFrom = now;
          continue;
        }
        // Once one stream has its `decode` tokens the batch starts to shrink: everyone stops.
        if (now > steadyTo) break;
        rampTokens++;
        if (now > steadyFrom) {
          steadyTokens++;
          if (++after >= decode) {
            steadyTo = now;
            break;
          }
        }
      }
    } finally {
      hold(-held);
    }
  }));
  const first = Math.min(...firsts);
  return {
    steady: steadyTokens / ((steadyTo - steadyFrom) / 1000),
    withRamp: rampTokens / ((steadyTo - first) / 1000),
  };
}

async function decodeRate(g: Generator, prompt: Int32Array, decode: number, streams: number, tag: string, gauge?: PositionGauge): Promise<number> {
  return (await measureDecode(g, prompt, decode, streams, tag, gauge)).steady;
}

/** SIGTERM to every bench worker, SIGKILL to any still running 5 s later; resolves when all exited. */
export async function stopWorkers(workers: readonly { readonly proc: ChildProcess }[]): Promise<void> {
  for (const w of workers) w.proc.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise<void>((r) => {
    if (w.proc.exitCode !== null || w.proc.signalCode !== null) { r(); return; }
    const t = setTimeout(() => w.proc.kill('SIGKILL'), 5000);
    w.proc.once('exit', () => { clearTimeout(t); r(); });
  })));
}

export function spawnWorker(url: string, token: string, cluster: string, name: string, opts: { modelDir: string; threads: number }): { proc: ChildProcess; log: () => string } {
  // Equal --speed: both workers share this machine, so a probe could only measure its noise.
  // The token by environment: a command line is readable by every user (ps).
  const proc = spawn(process.execPath, [BIN, 'worker', '--join', url, '--cluster', cluster, '--name', name,
    '--model', opts.modelDir, '--threads', String(opts.threads), '--speed', '10'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HEARTH_LOG_LEVEL: 'warn', HEARTH_TOKEN: token },
  });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
  return { proc, log: () => log };
}

export async function waitLive(p: ClusterPipeline, stages: number, timeoutMs: number, logs: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const plan = p.coordinator.plan();
    if (plan !== null && plan.live && plan.stages.length === stages) return;
    if (Date.now() > end) throw new Error(`the 2-worker plan did not go live within ${timeoutMs / 1000} s; worker logs:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function benchCluster(opts: BenchClusterOptions): Promise<BenchClusterResult> {
  const quant = opts.quant ?? 'none';
  const threads = opts.threads ?? 1;
  const promptTokens = opts.promptTokens ?? 16;
  const decode = opts.decodeTokens ?? 64;
  const streamCounts = typeof opts.streams === 'number' ? [opts.streams] : [...(opts.streams ?? [8, 16])];
  const maxStreams = Math.max(1, ...streamCounts);
  const delays = opts.hopDelaysMs ?? [0, 2];
  const say = opts.onProgress ?? (() => undefined);

  const ckpt = openCheckpoint(opts.modelDir);
  const cfg = ckpt.config;
  const cost = modelCostsFromCheckpoint(ckpt, { quant, kvTokens: 4096 });
  ckpt.close();
  const prompt = Int32Array.from({ length: promptTokens }, (_, i) => (i * 131 + 17) % Math.min(cfg.vocabSize, 1000));
  const warm = async (g: Generator): Promise<void> => { await decodeRate(g, prompt, 4, 1, 'warm'); };

  const rounds = Math.max(1, opts.rounds ?? 3);
  const token = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token });
  const rows: BenchClusterRow[] = [];
  const spotRows: BenchSpotCheckRow[] = [];
  let spot: SpotChecker | null = null;
  let stages: (readonly [number, number])[] = [];
  const cluster = 'bench';
  let bus: NatsBus | null = null;
  let pipeline: ClusterPipeline | null = null;
  let local: LocalPipeline | null = null;
  let split: LocalPipeline | null = null;
  let gatewayBeforeBaselines: number | null = null;
  let sampler: NodeJS.Timeout | null = null;
  const seen = new Map<string, { name: string; range: readonly [number, number] | null; kvPeak: number }>();
  const gauge: PositionGauge = { now: 0, peak: 0 };
  const memory: BenchNodeMemory[] = [];
  // Both sides stay loaded for the whole run, so their measurements can alternate: a burst of
  // load from elsewhere then hits both, not just whichever ran at that moment.
  const workers = ['w1', 'w2'].map((name) => spawnWorker(nats.url, token, cluster, name, { modelDir: opts.modelDir, threads }));
  try {
    say('loading: 2 workers, then the model in this process');
    bus = await NatsBus.connect({ servers: nats.url, token, name: 'hearth-bench-gateway' });
    pipeline = createClusterPipeline({
      // 'balanced': the bench measures the 2-worker split (the 'fastest' planner may leave a worker
      // of a small model idle, which is right for serving but not what this compares).
      bus, cluster, cost, quant, settleMs: 1500, objective: 'balanced',
      model: { name: 'bench', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
    });
    await waitLive(pipeline, 2, 900_000, () => workers.map((w) => w.log()).join('\n'));
    stages = (pipeline.coordinator.plan()?.stages ?? []).map((s) => [s.start, s.end] as const);
    // The gateway's own peak, before this process also loads the baselines below.
    gatewayBeforeBaselines = peakRssBytes('self');
    // What each worker reports holding (heartbeats): its KV buffers at most, and who runs what.
    const coord = pipeline.coordinator;
    const sample = (): void => {
      for (const n of coord.snapshot().nodes) {
        const prev = seen.get(n.id);
        seen.set(n.id, { name: n.name, range: n.range ?? prev?.range ?? null, kvPeak: Math.max(prev?.kvPeak ?? 0, n.memory.kvBytes) });
      }
    };
    sample();
    sampler = setInterval(sample, 200);
    const engine = await createShardEngine(opts.modelDir, { start: 0, end: cfg.numLayers, quant, threads, provider: 'cpu' });
    local = new LocalPipeline([new StageRunner(engine)]);
    const localGen = createScheduler(local, { prefixCache: 0 });
    const splitEngines = await Promise.all(stages.map(([start, end]) => createShardEngine(opts.modelDir, { start, end, quant, threads, provider: 'cpu' })));
    split = new LocalPipeline(splitEngines.map((e) => new StageRunner(e)));
    const splitGen = createScheduler(split, { prefixCache: 0 });
    const gen = createScheduler(pipeline, { prefixCache: 0, maxConcurrent: Math.max(16, maxStreams), maxPerRequest: Math.max(16, maxStreams) });
    const rates = opts.spotCheckRates ?? [];
    if (rates.length > 0) {
      // The gateway's own copy of the stages, 1 thread each, as `hearth up`'s gateway runs it.
      const p = pipeline;
      spot = new SpotChecker({
        bus, cluster, gatewayId: p.gatewayId, rate: 0, coordinator: p.coordinator, tolerance: toleranceFor(quant),
        createEngine: (start, end) => createShardEngine(opts.modelDir, { start, end, quant, threads: 1, provider: 'cpu' }),
        onCheck: (e) => { if (!e.ok) say(`spot check FAILED on ${e.node} (stage ${e.stage}): ${e.detail}`); },
      });
      spot.start();
      p.setVerifier(spot);
    }
    const checked = rates.map(() => ({ one: 0, agg: 0, baseOne: 0, baseAgg: 0, seqs: 0, checkedSeqs: 0, comparisons: 0, failures: 0 }));
    await warm(localGen);
    let oneProcess = 0;
    let inSplit = 0;
    // Per hop delay: the best of each figure over the rounds, and what the runs saw on the way.
    const acc = delays.map(() => ({
      one: 0, agg: streamCounts.map(() => 0), ramp: streamCounts.map(() => 0), stageP50Ms: [] as number[],
      hops: [] as number[], sent: 0, chained: 0,
    }));
    // Every round measures every delay, one after the other: a ratio between two delays then
    // compares runs minutes apart at most, not a whole pass over the other delay (this host's
    // speed drifts by 10-20% over minutes). The same loaded workers serve every delay: the delay
    // travels in each step message.
    for (let r = 0; r < rounds; r++) {
      // Each side is warmed right before it is timed: the idle side's weights may have been
      // paged out meanwhile (onnxruntime maps them from files, and the kernel reclaims
      // file pages that sit idle), and the first tokens would measure the disk, not the relay.
      await warm(localGen);
      oneProcess = Math.max(oneProcess, await decodeRate(localGen, prompt, decode, 1, `local${r}`));
      await warm(splitGen);
      inSplit = Math.max(inSplit, await decodeRate(splitGen, prompt, decode, 1, `split${r}`));
      for (const [d, hopDelayMs] of delays.entries()) {
        const a = acc[d]!;
        pipeline.setHopDelay(hopDelayMs);
        await warm(gen);
        pipeline.hops.reset();
        pipeline.stages.reset();
        const counts0 = { ...pipeline.counts };
        const oneNow = await decodeRate(gen, prompt, decode, 1, `one${hopDelayMs}-${r}`, gauge);
        if (oneNow > a.one) { a.one = oneNow; a.stageP50Ms = pipeline.stages.quantiles(0.5); }
        const aggNow: number[] = [];
        for (const [i, n] of streamCounts.entries()) {
          const m = await measureDecode(gen, prompt, decode, n, `agg${n}-${hopDelayMs}-${r}`, gauge);
          aggNow[i] = m.steady;
          a.agg[i] = Math.max(a.agg[i] ?? 0, m.steady);
          a.ramp[i] = Math.max(a.ramp[i] ?? 0, m.withRamp);
        }
        a.hops.push(...pipeline.hops.samples());
        a.sent += pipeline.counts.sent - counts0.sent;
        a.chained += pipeline.counts.chained - counts0.chained;
        if (spot !== null && d === 0) {
          // Checked runs right after the unchecked ones of the same round: the ratio of the two
          // bests is the cost (the same conditions, as for every other ratio here).
          const n0 = streamCounts[0] ?? 8;
          for (let i = 0; i < rates.length; i++) {
            const c = checked[i]!;
            spot.setRate(rates[i]!);
            const before = spot.stats.sequences;
            const cmp0 = spot.stats.comparisons;
            const fail0 = spot.stats.failures;
            c.one = Math.max(c.one, await decodeRate(gen, prompt, decode, 1, `spot${i}-one-${r}`, gauge));
            c.agg = Math.max(c.agg, await decodeRate(gen, prompt, decode, n0, `spot${i}-agg-${r}`, gauge));
            c.seqs += 1 + n0;
            c.checkedSeqs += spot.stats.sequences - before;
            c.comparisons += spot.stats.comparisons - cmp0;
            c.failures += spot.stats.failures - fail0;
            spot.setRate(0);
            c.baseOne = Math.max(c.baseOne, oneNow);
            c.baseAgg = Math.max(c.baseAgg, aggNow[0] ?? 0);
            say(`spot-check rate ${rates[i]}, round ${r + 1}/${rounds}: 2 workers ${c.one.toFixed(1)}, ${n0} streams ${c.agg.toFixed(1)} tok/s (best so far; ${c.checkedSeqs} of ${c.seqs} sequences checked)`);
          }
        }
        say(`round ${r + 1}/${rounds}, hop delay ${hopDelayMs} ms: one process ${oneProcess.toFixed(1)}, split in-process ${inSplit.toFixed(1)}, 2 workers ${a.one.toFixed(1)}, ${streamCounts.map((n, i) => `${n} streams ${(a.agg[i] ?? 0).toFixed(1)}`).join(', ')} tok/s (best so far)`);
      }
    }
    for (const [d, hopDelayMs] of delays.entries()) {
      const a = acc[d]!;
      const multi = streamCounts.map((n, i) => ({ streams: n, tokS: a.agg[i] ?? 0, ratio: (a.agg[i] ?? 0) / a.one, withRampTokS: a.ramp[i] ?? 0 }));
      const hops = Float64Array.from(a.hops).sort();
      const q = (x: number): number => (hops.length === 0 ? Number.NaN : hops[Math.min(hops.length - 1, Math.round(x * (hops.length - 1)))]!);
      rows.push({
        hopDelayMs, oneProcessTokS: oneProcess, inProcessSplitTokS: inSplit, clusterTokS: a.one, clusterRatio: a.one / oneProcess,
        streams: multi[0]?.streams ?? 0, aggregateTokS: multi[0]?.tokS ?? 0, concurrencyRatio: multi[0]?.ratio ?? 0, multi,
        vsNoDelay: a.one / (acc[0]?.one ?? a.one), chainedShare: a.chained / Math.max(1, a.sent + a.chained),
        hopP50Ms: q(0.5), hopP99Ms: q(0.99), hops: hops.length,
        stageP50Ms: a.stageP50Ms,
      });
    }
    rates.forEach((rate, i) => {
      const c = checked[i]!;
      spotRows.push({ rate, clusterTokS: c.one, aggregateTokS: c.agg, singleRatio: c.one / c.baseOne, aggregateRatio: c.agg / c.baseAgg, checkedSequences: c.checkedSeqs, sequences: c.seqs, comparisons: c.comparisons, failures: c.failures });
    });
    // Peaks are read while the workers still run (an exited process has no /proc status).
    if (sampler !== null) clearInterval(sampler);
    sampler = null;
    const kvPerPosition = (start: number, end: number): number => (end - start) * kvBytesPerLayer(cfg, 1, kvElementBytes());
    const byName = new Map([...seen.values()].map((v) => [v.name, v]));
    for (const [i, w] of workers.entries()) {
      const name = `w${i + 1}`;
      const v = byName.get(name);
      const range = v?.range ?? null;
      const weightBytes = range === null ? 0 : plannedWeightBytes(cost, range[0], range[1]);
      const kvInUseBytes = range === null ? 0 : gauge.peak * kvPerPosition(range[0], range[1]);
      memory.push({ node: name, range, peakRssBytes: peakRssBytes(w.proc.pid), weightBytes, kvInUseBytes, kvHeldPeakBytes: v?.kvPeak ?? 0, boundBytes: rssBound(weightBytes, kvInUseBytes) });
    }
    memory.push({ node: 'gateway', range: null, peakRssBytes: peakRssBytes('self'), weightBytes: 0, kvInUseBytes: 0, kvHeldPeakBytes: 0, boundBytes: 400 * MB, peakBeforeBaselinesBytes: gatewayBeforeBaselines });
  } finally {
    if (sampler !== null) clearInterval(sampler);
    await spot?.close();
    await stopWorkers(workers);
    await pipeline?.close();
    await bus?.close();
    await local?.close();
    await split?.close();
    await nats.stop();
  }
  const planStages = [...seen.values()].filter((v) => v.range !== null).sort((a, b) => a.range![0] - b.range![0]);
  const p50 = rows[0]?.stageP50Ms ?? [];
  const balance = stages.map((range, i) => ({ range, node: planStages.find((v) => v.range![0] === range[0])?.name ?? '?', msPerStep: p50[i] ?? Number.NaN }));
  const ms = balance.map((b) => b.msPerStep).filter(Number.isFinite);
  const balanceRatio = ms.length === 0 ? Number.NaN : Math.max(...ms) / Math.min(...ms);
  return {
    model: opts.modelDir, quant, threads, workers: 2, promptTokens, decodeTokens: decode, stages, rows, ...(spotRows.length > 0 ? { spotCheck: spotRows } : {}),
    peakPositions: gauge.peak, memory, balance, balanceRatio,
  };
}

export function formatBenchCluster(r: BenchClusterResult): string {
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const head = `cluster bench: ${r.model} (quant ${r.quant}, ${r.threads} thread(s) per process, 2 workers ${r.stages.map(([a, b]) => `[${a},${b})`).join(' ')}, prompt ${r.promptTokens}, decode ${r.decodeTokens})`;
  const counts = r.rows[0]?.multi.map((m) => m.streams) ?? [];
  const goal = (n: number): string => (n === 8 ? ' (≥3.0)' : n === 16 ? ' (≥4.0)' : '');
  const cols = ['hop delay', '1 process tok/s', '2 stages in-process', '2 workers tok/s', '÷ 1 process (≥0.95)', '÷ 0 ms (≥0.85)',
    ...counts.flatMap((n) => [`${n} streams tok/s`, `${n}÷1${goal(n)}`, `${n} incl. ramp`]), 'chained', 'hop p50 ms', 'hop p99 ms', 'stage p50 ms'];
  const rows = r.rows.map((x) => [`${x.hopDelayMs} ms`, f(x.oneProcessTokS), f(x.inProcessSplitTokS), f(x.clusterTokS), f(x.clusterRatio, 2),
    x === r.rows[0] ? '-' : f(x.vsNoDelay, 2), ...x.multi.flatMap((m) => [f(m.tokS), f(m.ratio, 2), f(m.withRampTokS)]), `${f(100 * x.chainedShare, 0)}%`,
    f(x.hopP50Ms, 2), f(x.hopP99Ms, 2), x.stageP50Ms.map((v) => f(v)).join(' / ')]);
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(w[i] ?? 0)).join('  ');
  const out = [head, line(cols), ...rows.map(line)];
  if (r.spotCheck !== undefined) {
    const sc = ['spot-check rate', '2 workers tok/s', '÷ unchecked (≥0.95)', `${counts[0] ?? 'N'} streams tok/s`, '÷ unchecked (≥0.95)', 'sequences checked', 'comparisons (failed)'];
    const srows = r.spotCheck.map((x) => [String(x.rate), f(x.clusterTokS), f(x.singleRatio, 3), f(x.aggregateTokS), f(x.aggregateRatio, 3), `${x.checkedSequences} of ${x.sequences}`, `${x.comparisons} (${x.failures})`]);
    const sw = sc.map((c, i) => Math.max(c.length, ...srows.map((row) => (row[i] ?? '').length)));
    const sline = (cells: string[]): string => cells.map((c, i) => c.padStart(sw[i] ?? 0)).join('  ');
    out.push('', 'spot-checking (hop delay 0; unchecked = the same rounds\' cluster figures above):', sline(sc), ...srows.map(sline));
  }
  out.push('', ...formatMemory(r));
  return out.join('\n');
}

/** Memory and stage balance (issue 20 item 7). */
function formatMemory(r: BenchClusterResult): string[] {
  const mb = (b: number | null | undefined): string => (b === null || b === undefined || !Number.isFinite(b) ? '-' : `${(b / MB).toFixed(1)}`);
  const cols = ['node', 'layers', 'peak RSS MB', 'weights MB', 'KV in use MB', 'KV held MB', 'RSS ÷ (weights+KV)', 'bound MB', 'within'];
  const rows = r.memory.map((m) => {
    const gw = m.node === 'gateway';
    const planned = m.weightBytes + m.kvInUseBytes;
    return [
      gw ? 'gateway (bench process)' : m.node,
      m.range === null ? '-' : `[${m.range[0]},${m.range[1]})`,
      gw ? `${mb(m.peakBeforeBaselinesBytes)} (${mb(m.peakRssBytes)} with baselines)` : mb(m.peakRssBytes),
      gw ? '-' : mb(m.weightBytes),
      gw ? '-' : mb(m.kvInUseBytes),
      gw ? '-' : mb(m.kvHeldPeakBytes),
      gw || m.peakRssBytes === null || planned === 0 ? '-' : (m.peakRssBytes / planned).toFixed(2),
      mb(m.boundBytes),
      // The gateway's bound applies to its peak before the baselines joined this process.
      (gw ? m.peakBeforeBaselinesBytes : m.peakRssBytes) == null ? '-' : ((gw ? m.peakBeforeBaselinesBytes! : m.peakRssBytes!) <= m.boundBytes ? 'yes' : 'NO'),
    ];
  });
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0))).join('  ');
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
  return [
    `memory (peak RSS = VmHWM; weights = planner, as built; KV in use = planner, at the ${r.peakPositions} positions in flight at most; bound = 1.3 × (weights + KV) + 150 MB, the gateway's 400 MB):`,
    line(cols), ...rows.map(line),
    '',
    `stage balance (median ms per single-stream step, hop delay ${r.rows[0]?.hopDelayMs ?? 0} ms): ${r.balance.map((b) => `${b.node} [${b.range[0]},${b.range[1]}) ${f(b.msPerStep)} ms`).join(', ')}; slowest ÷ fastest ${Number.isFinite(r.balanceRatio) ? r.balanceRatio.toFixed(2) : '-'}`,
  ];
}
