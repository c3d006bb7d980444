// The Pipeline the scheduler drives when the model runs on worker processes over the bus.
// step() sends to stage 0 of the live plan; stage k hands its hidden states straight to stage
// k+1; the last stage answers on this gateway's result subject, matched by (seq, stepId).
// A plan change (node lost or joined) rejects every step in flight with PLAN_CHANGED, and a
// sequence whose KV lives on an older plan's stages is refused the same way: the scheduler then
// replays it from its tokens on the new plan.

import { randomBytes } from 'node:crypto';
import { bin, f32, speaksForItself, subjects, type ModelRef, type PlanStage, type ResultMsg, type StepChain, type WireMessage } from '../bus/contract.ts';
import { SILENT_LOG, type Bus, type Log } from '../bus/types.ts';
import { ERRORS, HearthError, type ErrorCode } from '../errors/index.ts';
import type { Quant } from '../runtime/types.ts';
import type { Pipeline, StepOutcome, StepRequest } from '../scheduler/types.ts';
import { Coordinator, type ClusterSnapshot, type LivePlan, type NodeTrust, type WeightsGrantIssuer } from './coordinator.ts';
import { HopStats, StageStats } from './hop-stats.ts';
import { StepTrace, spansOf } from './step-trace.ts';
import type { ModelCost } from './planner.ts';
import type { PlanObjective } from './plan-choice.ts';
import { wallMs } from '../bus/wall-clock.ts';

export interface ClusterPipelineOptions {
  readonly bus: Bus;
  /** Subject namespace (several clusters may share one nats-server). Default "default". */
  readonly cluster?: string;
  readonly model: ModelRef;
  readonly cost: ModelCost;
  readonly quant?: Quant;
  readonly log?: Log;
  /** A step with no answer this long fails with HEARTH_ERR_STEP_TIMEOUT (default 120 s). */
  readonly stepTimeoutMs?: number;
  /** How long step() waits for a plan that is loading before HEARTH_ERR_NO_PLAN (default 60 s). */
  readonly readyTimeoutMs?: number;
  /** When no plan can serve (the survivors cannot hold the model) for this long, requests fail at
   *  once with HEARTH_ERR_NO_PLAN instead of waiting out their timeout (default 3 s: a node that is
   *  just restarting gets that long to come back). */
  readonly noPlanGraceMs?: number;
  /** Added before every hop — the gateway's publish to stage 0 and, carried in the step, each
   *  stage's publish (LAN-latency benchmark; default HEARTH_HOP_DELAY_MS or 0). */
  readonly hopDelayMs?: number;
  readonly nodeTimeoutMs?: number;
  readonly settleMs?: number;
  /** Workers are on their way (default true); false = with no worker ever joined, fail at once. */
  readonly expectWorkers?: boolean;
  /** How a worker joins, for the "no worker" message. */
  readonly joinHint?: string;
  /** The planner's objective (default 'fastest'; see plan-choice.ts). */
  readonly objective?: PlanObjective;
  /** Per-node credentials (issue 14): the plan serves once the bus grants its edges. */
  readonly trust?: NodeTrust;
  /** Per-node weights grants (issue 19): each assignment lets its node fetch only its layers. */
  readonly weightsGrants?: WeightsGrantIssuer;
}

/** Spot-checking (src/trust/spot-check.ts): the answer of a checked step is released to the
 *  scheduler only once the check passed, so a node caught doing bad work never gets a token
 *  into a stream — the sequence replays from its last checked token on the next plan. */
export interface StepVerifier {
  /** null: this step is not being checked. Else resolves true (passed) or false (failed). */
  verdict(seq: string, stepId: number): Promise<boolean> | null;
}

export interface ClusterPipeline extends Pipeline {
  readonly coordinator: Coordinator;
  readonly gatewayId: string;
  clusterSnapshot(): ClusterSnapshot;
  /** Per-hop latencies (ms) seen in results since the last reset. */
  readonly hops: HopStats;
  /** Per-stage time (ms) each step spent on each stage (by stage index). */
  readonly stages: StageStats;
  /** Sets the delay added before every hop of later steps (benchmarks; 0 = off). */
  setHopDelay(ms: number): void;
  /** Steps this gateway sent to stage 0, and tokens that came back from steps the last stage
   *  chained (two hops per token) — for tests, metrics and the benchmark. */
  readonly counts: { sent: number; chained: number };
  /** Installs (or removes) the spot-checker whose verdicts gate checked steps. */
  setVerifier(v: StepVerifier | null): void;
  /** Starts (or stops) keeping each answered step's per-stage intervals (step-trace.ts); null
   *  while off. For tests and benchmarks: off, it costs one comparison per result. */
  setTrace(on: boolean): void;
  readonly trace: StepTrace | null;
}

interface Pending {
  readonly resolve: (o: StepOutcome) => void;
  readonly reject: (e: unknown) => void;
  readonly epoch: number;
  readonly at: number;
  readonly seq: string;
}

export function hopDelayFromEnv(): number {
  const v = Number(process.env['HEARTH_HOP_DELAY_MS'] ?? '0');
  return Number.isFinite(v) && v > 0 ? v : 0;
}

export function createClusterPipeline(opts: ClusterPipelineOptions): ClusterPipeline {
  return new BusPipeline(opts);
}

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.keys(ERRORS));

class BusPipeline implements ClusterPipeline {
  readonly coordinator: Coordinator;
  readonly gatewayId = `gw-${randomBytes(4).toString('hex')}`;
  readonly hops = new HopStats();
  readonly stages = new StageStats();
  readonly counts = { sent: 0, chained: 0 };
  private readonly bus: Bus;
  private readonly cluster: string;
  private readonly log: Log;
  private readonly pending = new Map<string, Pending>();
  /** Chained decodes in flight, by sequence (one per sequence at a time). */
  private readonly streams = new Map<string, ChainStream>();
  /** Epoch whose stages hold each sequence's KV. */
  private readonly seqEpoch = new Map<string, number>();
  private readonly toFree = new Set<string>();
  private freeScheduled = false;
  private nextStep = 1;
  private readonly unsubs: (() => void)[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private readonly stepTimeoutMs: number;
  private readonly readyTimeoutMs: number;
  private readonly noPlanGraceMs: number;
  private hopDelayMs: number;
  private readonly liveWaiters = new Set<() => void>();
  private closed = false;
  private verifier: StepVerifier | null = null;
  trace: StepTrace | null = null;
  /** Make before break (issue 22): the next plan, loaded, taking warm-up steps before the switch. */
  private warming: { readonly epoch: number; readonly stages: readonly PlanStage[] } | null = null;
  private readonly warmers = new Set<(epoch: number) => Promise<void>>();

  constructor(opts: ClusterPipelineOptions) {
    this.bus = opts.bus;
    this.cluster = opts.cluster ?? 'default';
    this.log = opts.log ?? SILENT_LOG;
    this.stepTimeoutMs = opts.stepTimeoutMs ?? 120_000;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
    this.noPlanGraceMs = opts.noPlanGraceMs ?? 3000;
    this.hopDelayMs = opts.hopDelayMs ?? hopDelayFromEnv();
    this.coordinator = new Coordinator({
      bus: opts.bus, cluster: this.cluster, gatewayId: this.gatewayId, model: opts.model, cost: opts.cost,
      quant: opts.quant ?? 'none',
      ...(opts.log !== undefined ? { log: opts.log } : {}),
      ...(opts.nodeTimeoutMs !== undefined ? { nodeTimeoutMs: opts.nodeTimeoutMs } : {}),
      ...(opts.settleMs !== undefined ? { settleMs: opts.settleMs } : {}),
      expectWorkers: opts.expectWorkers ?? true,
      ...(opts.joinHint !== undefined ? { joinHint: opts.joinHint } : {}),
      ...(opts.objective !== undefined ? { objective: opts.objective } : {}),
      ...(opts.trust !== undefined ? { trust: opts.trust } : {}),
      ...(opts.weightsGrants !== undefined ? { weightsGrants: opts.weightsGrants } : {}),
    });
    this.unsubs.push(this.coordinator.onPlan((plan) => this.onPlan(plan)));
    this.unsubs.push(this.bus.subscribe(subjects.result(this.cluster, this.gatewayId), (m) => this.onResult(m)));
    // A stage's "I could not run this step" comes on its own subject (any member may publish it;
    // only the last stage may publish results): only errors are taken from there.
    // The subject names the faulting node (issue 19): a fault in another node's name is dropped.
    this.unsubs.push(this.bus.subscribe(subjects.fault(this.cluster, this.gatewayId, '*'), (m, subj) => { if (m.t === 'result' && m.error !== null && speaksForItself(subj, m.id)) this.onResult(m); }));
    // Messages in flight while the NATS server is away may be lost: replay those steps (the plan
    // serves again once every stage is heard from on the new connection).
    this.unsubs.push(this.bus.onStatus((st) => {
      if (st !== 'disconnected') return;
      for (const [key, p] of this.pending) {
        this.pending.delete(key);
        p.reject(new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()]));
      }
      for (const s of this.streams.values()) s.fail(new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()]));
    }));
    this.coordinator.setWarmer((epoch, stages) => this.warm(epoch, stages));
    this.coordinator.start();
    this.sweeper = setInterval(() => this.sweepTimeouts(), 1000);
    this.sweeper.unref();
  }

  epoch(): number {
    return this.coordinator.epoch();
  }

  onWarm(fn: (epoch: number) => Promise<void>): () => void {
    this.warmers.add(fn);
    return () => this.warmers.delete(fn);
  }

  /** The coordinator's warmer: the next plan takes steps addressed to its epoch until every
   *  scheduler has warmed it (or failed to: those streams replay after the switch). */
  private async warm(epoch: number, stages: readonly PlanStage[]): Promise<void> {
    if (this.warmers.size === 0) return;
    const w = { epoch, stages };
    this.warming = w;
    try {
      await Promise.allSettled([...this.warmers].map((fn) => fn(epoch)));
    } finally {
      if (this.warming === w) this.warming = null;
    }
  }

  setVerifier(v: StepVerifier | null): void {
    this.verifier = v;
  }

  setTrace(on: boolean): void {
    this.trace = on ? (this.trace ?? new StepTrace()) : null;
  }

  setHopDelay(ms: number): void {
    this.hopDelayMs = Math.max(0, ms);
  }

  clusterSnapshot(): ClusterSnapshot {
    return this.coordinator.snapshot();
  }

  async waitReady(timeoutMs: number): Promise<void> {
    await this.livePlan(timeoutMs);
  }

  async step(req: StepRequest): Promise<StepOutcome> {
    const { epoch, key } = await this.send(req, null);
    return new Promise<StepOutcome>((resolve, reject) => {
      this.pending.set(key, { resolve, reject, epoch, at: Date.now(), seq: req.seq });
    });
  }

  /**
   * Two hops per token (issue 10): one step out to stage 0, then the last stage samples and sends
   * each next step straight back to stage 0 (StepMsg.chain), streaming every token here in
   * parallel. Yields up to n tokens; fewer when one is in `stop`. The caller stays the authority:
   * ending the iteration early (cancel, a stop string) and freeing the sequence makes the workers
   * drop whatever step of it is still under way.
   */
  async *decode(req: StepRequest, n: number, stop: readonly number[]): AsyncGenerator<StepOutcome> {
    if (n <= 1 || req.wantLogits || !req.wantToken) { yield await this.step(req); return; }
    const stream = new ChainStream(req.seq);
    // Registered before the send, so no answer can come without a listener; removed on failure.
    this.streams.set(req.seq, stream);
    try {
      await this.send(req, { left: n, stop }, n, stream);
      for (let i = 0; i < n; i++) {
        const out = await stream.next();
        yield out;
        if (out.token !== null && stop.includes(out.token.token)) return;
      }
    } finally {
      stream.close();
      if (this.streams.get(req.seq) === stream) this.streams.delete(req.seq);
    }
  }

  /** Publishes the step of req to stage 0 of the live plan; reserves `ids` step ids. */
  private async send(req: StepRequest, chain: StepChain | null, ids = 1, stream?: ChainStream): Promise<{ epoch: number; key: string; stepId: number }> {
    if (this.closed) throw new HearthError('HEARTH_ERR_NO_PLAN', ['the gateway is shutting down']);
    let plan = this.coordinator.plan();
    if (plan === null || !plan.live) plan = await this.livePlan(this.readyTimeoutMs);
    // A warm-up step goes to the plan loading (its stages serve its epoch already).
    const target = req.epoch === undefined || req.epoch === plan.epoch ? plan : this.warming?.epoch === req.epoch ? this.warming : null;
    if (target === null) throw new HearthError('HEARTH_ERR_PLAN_CHANGED', [plan.epoch]);
    const epoch = target.epoch;
    if (stream !== undefined) stream.epoch = epoch;
    // The KV this step extends must live on this plan's stages.
    const fresh = req.pos === 0 || req.fork !== undefined;
    const basis = req.fork !== undefined ? this.seqEpoch.get(req.fork.from) : fresh ? epoch : this.seqEpoch.get(req.seq);
    if (basis !== epoch) {
      this.seqEpoch.delete(req.seq);
      throw new HearthError('HEARTH_ERR_PLAN_CHANGED', [epoch]);
    }
    if (fresh) this.seqEpoch.set(req.seq, epoch);
    const stage0 = target.stages[0];
    if (stage0 === undefined) throw new HearthError('HEARTH_ERR_NO_PLAN', ['the plan has no stages']);
    const stepId = this.nextStep;
    this.nextStep += ids;
    if (stream !== undefined) { stream.nextStepId = stepId; stream.ready = true; }
    const key = `${req.seq}\u0000${stepId}`;
    const sentAt = wallMs();
    if (this.hopDelayMs > 0) {
      await new Promise((r) => setTimeout(r, this.hopDelayMs));
      // A re-plan during the delay: stage 0 of the old plan may be gone.
      if (this.coordinator.epoch() !== epoch && this.warming?.epoch !== epoch) throw new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()]);
    }
    // Send first, then register: a send that throws (a message the codec cannot encode) fails this
    // call alone and leaves no pending step behind, whose later rejection (plan change, timeout,
    // close) would have no handler and end the process (issue 8, defect 1). The answer cannot
    // arrive before we register: it comes through the event loop, after this synchronous code.
    try {
      this.bus.publish(subjects.step(this.cluster, stage0.node), {
        t: 'step', epoch, gateway: this.gatewayId, seq: req.seq, stepId, pos: req.pos, n: req.tokens.length,
        tokens: bin(req.tokens), hidden: null, promptLen: req.promptLen, sampling: req.sampling,
        wantToken: req.wantToken, wantLogits: req.wantLogits, fork: req.fork ?? null,
        ...(req.exact === true ? { exact: true } : {}),
        sentAt, hopMs: [], stageMs: [], delayMs: this.hopDelayMs,
        ...(chain === null ? {} : { chain }),
        // Speculative decoding's fields travel only when set (msgpack has no undefined).
        ...(req.rewind === true ? { rewind: true } : {}),
        ...(req.choices !== undefined && req.choices > 1 ? { choices: req.choices } : {}),
        ...(req.wantHidden === true ? { wantHidden: true } : {}),
      });
    } catch (e) {
      if (fresh) this.seqEpoch.delete(req.seq);
      throw new HearthError('HEARTH_ERR_ENGINE', [`sending the step of ${req.seq} failed: ${(e as Error).message}`], { cause: e });
    }
    this.counts.sent++;
    return { epoch, key, stepId };
  }

  free(seq: string): void {
    this.seqEpoch.delete(seq);
    this.toFree.add(seq);
    // Frees of one scheduler turn travel as one message.
    if (!this.freeScheduled) {
      this.freeScheduled = true;
      setImmediate(() => {
        this.freeScheduled = false;
        const seqs = [...this.toFree];
        this.toFree.clear();
        if (seqs.length > 0 && !this.closed) this.bus.publish(subjects.free(this.cluster), { t: 'free', seqs });
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const u of this.unsubs) u();
    await this.coordinator.close();
    const err = new HearthError('HEARTH_ERR_NO_PLAN', ['the gateway is shutting down']);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const st of this.streams.values()) st.fail(err);
    for (const w of this.liveWaiters) w();
  }

  // --- internals ---------------------------------------------------------------------------

  private livePlan(timeoutMs: number): Promise<LivePlan> {
    const now = this.coordinator.plan();
    if (now !== null && now.live) return Promise.resolve(now);
    const hopeless = (): boolean => {
      const ms = this.coordinator.noPlanForMs();
      return ms !== null && ms >= this.noPlanGraceMs;
    };
    const noPlan = (why: string): HearthError => new HearthError('HEARTH_ERR_NO_PLAN', [why]);
    if (hopeless()) return Promise.reject(noPlan(this.coordinator.noPlanReason() ?? 'no plan'));
    return new Promise<LivePlan>((resolve, reject) => {
      const check = (): void => {
        const p = this.coordinator.plan();
        if (p !== null && p.live) { done(); resolve(p); return; }
        if (this.closed) { done(); reject(noPlan('the gateway is shutting down')); return; }
        if (hopeless()) { done(); reject(noPlan(this.coordinator.noPlanReason() ?? 'no plan')); }
      };
      const timer = setTimeout(() => {
        done();
        reject(noPlan(this.coordinator.noPlanReason() ?? `the plan of epoch ${this.coordinator.epoch()} did not finish loading within ${timeoutMs} ms`));
      }, timeoutMs);
      // Re-check now and then: "hopeless" turns true by the clock, not by an event.
      const poll = setInterval(check, 250);
      const done = (): void => { clearTimeout(timer); clearInterval(poll); this.liveWaiters.delete(check); };
      this.liveWaiters.add(check);
    });
  }

  private onPlan(plan: LivePlan | null): void {
    const epoch = plan?.epoch ?? this.coordinator.epoch();
    // A plan past the one warming replaced it (a node lost meanwhile): its warm-up fails.
    const warming = this.warming !== null && this.warming.epoch > epoch ? this.warming.epoch : null;
    if (warming === null && this.warming !== null && this.warming.epoch !== epoch) this.warming = null;
    // Steps sent on an older plan can no longer complete (a stage may be gone): replay them.
    for (const [key, p] of this.pending) {
      // Warm-up steps of the plan loading stay: it is still to come.
      if (p.epoch !== epoch && p.epoch !== warming) {
        this.pending.delete(key);
        p.reject(new HearthError('HEARTH_ERR_PLAN_CHANGED', [epoch]));
      }
    }
    for (const st of this.streams.values()) {
      if (st.ready && st.epoch !== epoch) st.fail(new HearthError('HEARTH_ERR_PLAN_CHANGED', [epoch]));
    }
    for (const w of [...this.liveWaiters]) w();
  }

  private onResult(m: WireMessage): void {
    if (m.t !== 'result') return;
    if (!this.coordinator.isMember(m.id)) {
      this.log.warn({ node: m.id, seq: m.seq }, 'dropped a result from an unknown node');
      return;
    }
    const key = `${m.seq}\u0000${m.stepId}`;
    const p = this.pending.get(key);
    if (p === undefined) {
      const st = this.streams.get(m.seq);
      if (st !== undefined && st.ready && m.stepId === st.nextStepId) this.onChained(st, m);
      return; // else answered already, or rejected by a plan change
    }
    this.pending.delete(key);
    this.hops.add(m.hopMs, wallMs() - m.sentAt);
    this.stages.add(m.stageMs);
    if (m.error === null && m.token !== null) this.coordinator.meter.emit(performance.now());
    if (this.trace !== null) this.trace.add({ seq: m.seq, stepId: m.stepId, spans: spansOf(m.sentAt, m.stageMs, m.hopMs) });
    if (m.error !== null) { p.reject(toError(m)); return; }
    if (m.epoch !== p.epoch) { p.reject(new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()])); return; }
    const outcome: StepOutcome = {
      token: m.token,
      ...(m.tokens === undefined ? {} : { tokens: m.tokens }),
      ...(m.logits === null ? {} : { logits: f32(m.logits) }),
      ...(m.hidden === undefined ? {} : { hidden: f32(m.hidden) }),
    };
    const check = this.verifier?.verdict(m.seq, m.stepId) ?? null;
    if (check === null) { p.resolve(outcome); return; }
    // A failed check has dropped the node (a new plan): the step replays there.
    check.then((ok) => {
      if (ok) p.resolve(outcome);
      else p.reject(new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()]));
    }, (e: unknown) => p.reject(e));
  }

  private onChained(st: ChainStream, m: ResultMsg): void {
    // The first result of a chain answers the step this gateway sent; the rest were chained.
    if (st.received++ > 0) this.counts.chained++;
    st.nextStepId++;
    const now = performance.now();
    if (m.error === null) this.coordinator.meter.emit(now);
    // A stream alone (no other chain, no prefill or single step in flight): its gaps are the
    // plan's single-stream speed, and its stage and hop times that speed's parts (figures.ts).
    if (st.lastAt > 0 && this.streams.size === 1 && this.pending.size === 0 && m.error === null && m.epoch === st.epoch) {
      this.coordinator.meter.single(st.epoch, { at: now, gapMs: now - st.lastAt, stageMs: m.stageMs, hopMs: m.hopMs });
    }
    st.lastAt = now;
    st.at = Date.now();
    this.hops.add(m.hopMs, wallMs() - m.sentAt);
    this.stages.add(m.stageMs);
    if (m.error !== null) { st.fail(toError(m)); return; }
    if (m.epoch !== st.epoch) { st.fail(new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()])); return; }
    const check = this.verifier?.verdict(m.seq, m.stepId) ?? null;
    if (check === null && st.gate === null) { st.push({ token: m.token }); return; }
    // A checked token is released once its check passed; tokens behind it wait their turn.
    const gate = (st.gate ?? Promise.resolve(true)).then((ok) => (ok ? (check ?? true) : false), () => false);
    st.gate = gate;
    void gate.then((ok) => {
      if (st.gate === gate) st.gate = null;
      if (ok) st.push({ token: m.token });
      else st.fail(new HearthError('HEARTH_ERR_PLAN_CHANGED', [this.coordinator.epoch()]));
    });
  }

  private sweepTimeouts(): void {
    const cutoff = Date.now() - this.stepTimeoutMs;
    for (const st of this.streams.values()) {
      if (st.ready && st.at < cutoff) st.fail(new HearthError('HEARTH_ERR_STEP_TIMEOUT', [st.seq, this.stepTimeoutMs]));
    }
    for (const [key, p] of this.pending) {
      if (p.at < cutoff) {
        this.pending.delete(key);
        p.reject(new HearthError('HEARTH_ERR_STEP_TIMEOUT', [p.seq, this.stepTimeoutMs]));
      }
    }
  }
}

/** The tokens of one chained decode as they arrive, read one at a time by decode(). */
class ChainStream {
  readonly seq: string;
  epoch = -1;
  /** stepId of the next result expected (results of one sequence arrive in order: one sender). */
  nextStepId = -1;
  /** The step went out: results and plan changes now apply to it. */
  ready = false;
  at = Date.now();
  received = 0;
  /** performance.now() of the last result (0: none yet). */
  lastAt = 0;
  /** Spot-checking: the verdict the next token waits behind (null: nothing pending). */
  gate: Promise<boolean> | null = null;
  private queue: StepOutcome[] = [];
  private head = 0;
  private error: unknown = null;
  private waiter: { resolve: (o: StepOutcome) => void; reject: (e: unknown) => void } | null = null;

  constructor(seq: string) {
    this.seq = seq;
  }

  push(o: StepOutcome): void {
    const w = this.waiter;
    if (w !== null) { this.waiter = null; w.resolve(o); return; }
    this.queue.push(o);
  }

  fail(e: unknown): void {
    if (this.error !== null) return;
    this.error = e;
    const w = this.waiter;
    if (w !== null) { this.waiter = null; w.reject(e); }
  }

  next(): Promise<StepOutcome> {
    if (this.head < this.queue.length) {
      const o = this.queue[this.head++] as StepOutcome;
      if (this.head === this.queue.length) { this.queue = []; this.head = 0; }
      return Promise.resolve(o);
    }
    if (this.error !== null) return Promise.reject(this.error);
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }

  close(): void {
    this.fail(new Error('chained decode closed'));
  }
}

function toError(m: ResultMsg): HearthError {
  const e = m.error as { code: string; message: string };
  if (e.code === 'HEARTH_ERR_PLAN_CHANGED') return new HearthError('HEARTH_ERR_PLAN_CHANGED', [m.epoch]);
  if (KNOWN_CODES.has(e.code) && e.code !== 'HEARTH_ERR_ENGINE') {
    // Re-raise with the worker's own message text (already formatted there).
    const err = new HearthError(e.code as ErrorCode, []);
    Object.defineProperty(err, 'message', { value: `${e.message} (node ${m.id})` });
    return err;
  }
  return new HearthError('HEARTH_ERR_ENGINE', [`${e.message} (node ${m.id})`]);
}
