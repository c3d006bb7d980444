// Spot-checking of every node's work (issue 14). The gateway holds the checkpoint, so it can
// recompute: for a sampled fraction of sequences it mirrors every step of that sequence on a
// stage with an engine of its own (onnxruntime in worker threads, off the event loop) and compares
// what stage k sent on to stage k+1 against its own output for stage k, or the last stage's token
// against the token its own logits give (same sampler, same seed and position). A checked
// sequence must be mirrored from its first position, because a decode step depends on the KV of
// everything before it; so the unit sampled is a sequence, not a step.
//
// No device should need the whole model (issue 20), the gateway included: the engines it holds
// stay within a memory budget (cluster.spotCheckMemoryMb). Stage k's input is on the bus (stage
// k-1's output, or the prompt), so one stage can be checked on its own. When every stage fits the
// budget at once, a checked sequence is mirrored on all of them; otherwise on one stage, the
// "focus", which moves to the next stage that fits after a few checked sequences, so every stage
// that fits is checked in turn and only one stage's weights are resident at a time. A stage
// larger than the budget is never checked (logged once per plan; /v1/cluster shows which).
//
// Inputs and outputs are read off the bus with the gateway's own permission: it subscribes to
// every stage's step subject (a stage's input is the previous stage's output) and its result
// subject. A node cannot tell a checked sequence from another: nothing in the messages differs.
// The answer of a checked step is released to the scheduler only once the check passed (see
// StepVerifier), so a node caught doing bad work gets no token into a checked stream; it is
// dropped from the plan (credential revoked), and the sequence replays on the next plan from its
// last checked token — the text is that of an honest run.

import { randomInt } from 'node:crypto';
import { f32, i32, subjects, type PlanStage, type StepMsg, type WireMessage } from '../bus/contract.ts';
import { SILENT_LOG, type Bus, type Log } from '../bus/types.ts';
import type { LivePlan } from '../cluster/coordinator.ts';
import type { StepVerifier } from '../cluster/cluster-pipeline.ts';
import type { ShardEngine } from '../runtime/types.ts';
import { sampleToken } from '../sampling/index.ts';
import { DEFAULT_TOLERANCE, nearTie, relativeError } from './compare.ts';

/** Default fraction of sequences checked: the gateway recomputes about this share of all work. */
export const DEFAULT_SPOT_CHECK_RATE = 0.03;
/** A checked step whose check cannot finish in this long is released unchecked (and logged). */
const VERDICT_TIMEOUT_MS = 60_000;
/** Default budget for the gateway's spot-check engines: small, so a gateway on a small device
 *  (a Raspberry Pi, a NAS) never holds more than a slice of the model. */
export const DEFAULT_SPOT_CHECK_MEMORY_MB = 256;
/** Checked sequences on one focus stage before the focus moves on (each move may load a stage). */
const FOCUS_SEQUENCES = 4;

export interface SpotCheckEvent {
  readonly node: string;
  readonly ok: boolean;
  readonly stage: number;
  readonly seq: string;
  readonly detail: string;
}

export interface SpotCheckerOptions {
  readonly bus: Bus;
  readonly cluster: string;
  readonly gatewayId: string;
  /** Fraction of sequences checked (0 = off, 1 = every one). */
  readonly rate: number;
  readonly tolerance?: number;
  /** The plan now, and a way to drop a node (the coordinator). */
  readonly coordinator: {
    plan(): LivePlan | null;
    distrust(node: string, reason: string): void;
    onPlan(l: (plan: LivePlan | null) => void): () => void;
  };
  /** An engine for layers [start, end) of the served checkpoint. */
  readonly createEngine: (start: number, end: number) => Promise<ShardEngine>;
  /** Bytes an engine for layers [start, end) holds (weights as built + runtime overhead). */
  readonly engineBytes?: (start: number, end: number) => number;
  /** The most bytes of engines held at once (default: no limit). */
  readonly memoryBudget?: number;
  readonly log?: Log;
  /** Every comparison made (metrics, the status page). */
  readonly onCheck?: (e: SpotCheckEvent) => void;
  /** [0, 1) random numbers (tests make sampling certain with rate 1 instead). */
  readonly random?: () => number;
}

interface StepCheck {
  /** Comparisons still to come (one per stage). */
  left: number;
  ok: boolean;
  readonly promise: Promise<boolean>;
  readonly resolve: (ok: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

interface SeqCheck {
  readonly seq: string;
  readonly mirror: string;
  readonly epoch: number;
  readonly stages: readonly PlanStage[];
  /** The stages this sequence is mirrored on (all of them, or the one in focus). */
  readonly checked: ReadonlySet<number>;
  readonly chains: Promise<void>[];
  /** stage k's own output for (stepId, k), waiting for what the node sent, or the other way round. */
  readonly ours: Map<string, Float32Array | number>;
  readonly theirs: Map<string, Float32Array | number>;
  readonly steps: Map<number, StepCheck>;
  history: Int32Array;
  failed: boolean;
}

export class SpotChecker implements StepVerifier {
  private readonly o: SpotCheckerOptions;
  private readonly log: Log;
  private readonly tolerance: number;
  private readonly seqs = new Map<string, SeqCheck>();
  private readonly engines = new Map<string, Promise<ShardEngine>>();
  private readonly unsubs: (() => void)[] = [];
  private readonly random: () => number;
  private rate: number;
  private focus = 0;
  private onFocus = 0;
  /** Epoch of the plan whose over-budget stages were last logged. */
  private warnedEpoch = -1;
  /** Counts for the status page and /metrics. */
  readonly stats = { sequences: 0, comparisons: 0, failures: 0, worstPassingError: 0, uncheckable: [] as number[], peakEngines: 0 };

  constructor(o: SpotCheckerOptions) {
    this.o = o;
    this.log = o.log ?? SILENT_LOG;
    this.tolerance = o.tolerance ?? DEFAULT_TOLERANCE;
    this.rate = o.rate;
    this.random = o.random ?? (() => randomInt(0, 2 ** 31) / 2 ** 31);
  }

  start(): void {
    const c = this.o.cluster;
    this.unsubs.push(this.o.bus.subscribe(subjects.step(c, '*'), (m, subject) => { if (m.t === 'step') this.onStep(m, subject); }));
    this.unsubs.push(this.o.bus.subscribe(subjects.result(c, this.o.gatewayId), (m) => {
      if (m.t === 'result' && m.error === null && m.token !== null) this.onToken(m.seq, m.stepId, m.token.token);
    }));
    this.unsubs.push(this.o.bus.subscribe(subjects.free(c), (m) => { if (m.t === 'free') for (const s of m.seqs) this.drop(s); }));
    this.unsubs.push(this.o.coordinator.onPlan((plan) => this.onPlan(plan)));
  }

  async close(): Promise<void> {
    for (const u of this.unsubs) u();
    for (const s of [...this.seqs.keys()]) this.drop(s);
    const all = [...this.engines.values()];
    this.engines.clear();
    for (const e of all) await e.then((x) => x.close(), () => undefined);
  }

  /** Changes the fraction of new sequences checked (`hearth bench --cluster --spot-check`). */
  setRate(rate: number): void {
    this.rate = Math.min(1, Math.max(0, rate));
  }

  verdict(seq: string, stepId: number): Promise<boolean> | null {
    return this.seqs.get(seq)?.steps.get(stepId)?.promise ?? null;
  }

  // --- bus ---------------------------------------------------------------------------------

  private onStep(m: StepMsg, subject: string): void {
    if (m.gateway !== this.o.gatewayId) return;
    const plan = this.o.coordinator.plan();
    if (plan === null || plan.epoch !== m.epoch) return;
    const node = subject.split('.')[3];
    const k = plan.stages.findIndex((s) => s.node === node);
    if (k < 0) return;
    let sc = this.seqs.get(m.seq);
    if (k === 0 && m.pos === 0 && m.hidden === null) {
      // A new sequence (or a replay from its start): check it or not, from here on.
      if (sc !== undefined) this.drop(m.seq);
      sc = undefined;
      if (m.fork === null && this.rate > 0 && this.random() < this.rate) sc = this.begin(m.seq, plan);
    }
    if (sc === undefined || sc.epoch !== m.epoch || sc.failed) return;
    if (m.rewind === true || (m.choices ?? 0) > 0) {
      // A speculative verify step (issue 11) rewinds KV and answers several choices: not mirrored
      // (yet); the sequence goes on unchecked from here.
      this.drop(m.seq);
      return;
    }
    if (k === 0) this.expectStep(sc, m.stepId);
    else if (m.hidden !== null && sc.checked.has(k - 1)) this.put(sc, 'theirs', m.stepId, k - 1, f32(m.hidden));
    if (sc.checked.has(k)) this.mirror(sc, k, m);
  }

  private onToken(seq: string, stepId: number, token: number): void {
    const sc = this.seqs.get(seq);
    if (sc === undefined || sc.failed || !sc.checked.has(sc.stages.length - 1)) return;
    this.put(sc, 'theirs', stepId, sc.stages.length - 1, token);
  }

  private onPlan(plan: LivePlan | null): void {
    // Sequences of an older plan replay from their start: their mirrors are stale.
    for (const sc of [...this.seqs.values()]) if (plan === null || sc.epoch !== plan.epoch) this.drop(sc.seq);
    if (plan === null || !plan.live) return;
    // Engines load when a checked sequence first needs them (a gateway that never checks holds no
    // second copy of the model); those of ranges the new plan no longer has are closed.
    const keep = new Set(plan.stages.map((s) => `${s.start}-${s.end}`));
    for (const [key, e] of this.engines) {
      if (!keep.has(key)) { this.engines.delete(key); void e.then((x) => x.close(), () => undefined); }
    }
  }

  // --- mirroring -----------------------------------------------------------------------------

  /** The stages a newly sampled sequence is mirrored on, within the memory budget (empty: none fits). */
  private chooseStages(plan: LivePlan): Set<number> {
    const budget = this.o.memoryBudget ?? Infinity;
    const bytes = plan.stages.map((s) => this.o.engineBytes?.(s.start, s.end) ?? 0);
    if (bytes.reduce((a, b) => a + b, 0) <= budget) { this.stats.uncheckable = []; return new Set(plan.stages.map((_, i) => i)); }
    const fits = plan.stages.map((_, i) => i).filter((i) => (bytes[i] as number) <= budget);
    const over = plan.stages.map((_, i) => i).filter((i) => (bytes[i] as number) > budget);
    this.stats.uncheckable = over;
    if (this.warnedEpoch !== plan.epoch && over.length > 0) {
      this.warnedEpoch = plan.epoch;
      this.log.warn({ stages: over, budgetMb: Math.round(budget / 2 ** 20), stageMb: over.map((i) => Math.round((bytes[i] as number) / 2 ** 20)) },
        'spot check: these stages are larger than the gateway\'s spot-check memory budget and go unchecked (raise cluster.spotCheckMemoryMb to check them)');
    }
    if (fits.length === 0) return new Set();
    if (this.onFocus >= FOCUS_SEQUENCES) {
      this.focus++;
      this.onFocus = 0;
      // Checks still running on the old focus stop here (their steps go out unchecked), so its
      // engine can be closed before the next one loads: one stage resident at a time.
      const next = fits[this.focus % fits.length] as number;
      for (const sc of [...this.seqs.values()]) if (!sc.checked.has(next)) this.drop(sc.seq);
    }
    this.onFocus++;
    return new Set([fits[this.focus % fits.length] as number]);
  }

  private begin(seq: string, plan: LivePlan): SeqCheck | undefined {
    const checked = this.chooseStages(plan);
    if (checked.size === 0) return undefined;
    this.stats.sequences++;
    const sc: SeqCheck = {
      seq, mirror: `spot:${seq}`, epoch: plan.epoch, stages: plan.stages, checked, chains: plan.stages.map(() => Promise.resolve()),
      ours: new Map(), theirs: new Map(), steps: new Map(), history: new Int32Array(0), failed: false,
    };
    this.seqs.set(seq, sc);
    return sc;
  }

  private expectStep(sc: SeqCheck, stepId: number): void {
    if (sc.steps.has(stepId)) return;
    let resolve!: (ok: boolean) => void;
    const promise = new Promise<boolean>((r) => { resolve = r; });
    const timer = setTimeout(() => {
      this.log.warn({ seq: sc.seq, stepId }, 'spot check did not finish in time; released unchecked');
      this.settle(sc, stepId, true);
    }, VERDICT_TIMEOUT_MS);
    timer.unref();
    sc.steps.set(stepId, { left: sc.checked.size, ok: true, promise, resolve, timer });
  }

  private mirror(sc: SeqCheck, k: number, m: StepMsg): void {
    const stage = sc.stages[k]!;
    const last = k === sc.stages.length - 1;
    const tokens = i32(m.tokens).slice();
    const hidden = m.hidden === null ? undefined : f32(m.hidden).slice();
    sc.chains[k] = sc.chains[k]!.then(async () => {
      if (sc.failed || this.seqs.get(sc.seq) !== sc) return;
      const engine = await this.engine(stage);
      const [r] = await engine.run([{ seq: sc.mirror, pos: m.pos, n: m.n, tokens, ...(hidden !== undefined ? { hidden } : {}), ...(m.exact === true ? { exact: true } : {}) }]);
      if (!last) {
        if (r?.hidden === undefined) throw new Error('no hidden states from the spot-check engine');
        this.put(sc, 'ours', m.stepId, k, r.hidden);
        return;
      }
      // The last stage: its token, as the node's StageRunner samples it (same history, seed, pos).
      const need = m.pos + m.n;
      if (sc.history.length < need) { const h = new Int32Array(Math.max(need, sc.history.length * 2)); h.set(sc.history); sc.history = h; }
      sc.history.set(tokens, m.pos);
      if (!m.wantToken) { this.put(sc, 'ours', m.stepId, k, -1); this.put(sc, 'theirs', m.stepId, k, -1); return; }
      if (r?.logits === undefined) throw new Error('no logits from the spot-check engine');
      const ours = sampleToken(r.logits, m.sampling, { history: sc.history.subarray(0, need), promptLen: m.promptLen, pos: need }).token;
      // Kept for the comparison: a greedy near-tie decided by rounding is not bad work.
      this.pendingLogits.set(`${sc.seq}:${m.stepId}`, { logits: r.logits, greedy: m.sampling.temperature === 0 });
      this.put(sc, 'ours', m.stepId, k, ours);
    }).catch((e: unknown) => {
      // Our own failure says nothing about the node: stop checking this sequence, release it.
      this.log.warn({ seq: sc.seq, stage: k, err: (e as Error).message }, 'spot check could not run; sequence released unchecked');
      this.drop(sc.seq);
    });
  }

  /** Logits of last-stage steps whose node token has not arrived yet (near-tie check on arrival). */
  private readonly pendingLogits = new Map<string, { logits: Float32Array; greedy: boolean }>();

  private put(sc: SeqCheck, side: 'ours' | 'theirs', stepId: number, k: number, v: Float32Array | number): void {
    const key = `${stepId}:${k}`;
    const other = (side === 'ours' ? sc.theirs : sc.ours).get(key);
    if (other === undefined) { (side === 'ours' ? sc.ours : sc.theirs).set(key, v); return; }
    sc.ours.delete(key);
    sc.theirs.delete(key);
    const ours = side === 'ours' ? v : other;
    const theirs = side === 'ours' ? other : v;
    const node = sc.stages[k]!.node;
    let ok: boolean;
    let detail: string;
    if (typeof ours === 'number' || typeof theirs === 'number') {
      const pl = this.pendingLogits.get(`${sc.seq}:${stepId}`);
      this.pendingLogits.delete(`${sc.seq}:${stepId}`);
      ok = ours === theirs || (pl !== undefined && pl.greedy && typeof ours === 'number' && typeof theirs === 'number' && nearTie(pl.logits, theirs, ours, this.tolerance));
      detail = ok ? 'same token' : `sent token ${String(theirs)}, recomputed ${String(ours)}`;
    } else {
      const err = relativeError(theirs, ours);
      ok = err <= this.tolerance;
      if (ok && err > this.stats.worstPassingError) this.stats.worstPassingError = err;
      detail = `relative error ${err.toExponential(2)} (tolerance ${this.tolerance})`;
    }
    this.stats.comparisons++;
    this.o.onCheck?.({ node, ok, stage: k, seq: sc.seq, detail });
    if (!ok) {
      this.stats.failures++;
      sc.failed = true;
      this.log.error({ node, stage: k, seq: sc.seq, stepId, detail }, 'spot check failed: the node\'s output differs from the recomputation');
      for (const id of [...sc.steps.keys()]) this.settle(sc, id, false);
      this.drop(sc.seq);
      this.o.coordinator.distrust(node, `stage ${k} output differs from the gateway's recomputation: ${detail}`);
      return;
    }
    const st = sc.steps.get(stepId);
    if (st !== undefined && --st.left <= 0) this.settle(sc, stepId, true);
  }

  private settle(sc: SeqCheck, stepId: number, ok: boolean): void {
    const st = sc.steps.get(stepId);
    if (st === undefined) return;
    sc.steps.delete(stepId);
    clearTimeout(st.timer);
    st.resolve(ok);
  }

  private drop(seq: string): void {
    const sc = this.seqs.get(seq);
    if (sc === undefined) return;
    this.seqs.delete(seq);
    // Steps still waiting on a dropped check go out unchecked (a plan change replays them anyway).
    for (const id of [...sc.steps.keys()]) this.settle(sc, id, !sc.failed);
    for (const key of [...this.pendingLogits.keys()]) if (key.startsWith(`${seq}:`)) this.pendingLogits.delete(key);
    for (const s of sc.stages) {
      const e = this.engines.get(`${s.start}-${s.end}`);
      if (e !== undefined) void e.then((x) => x.free(sc.mirror), () => undefined);
    }
  }

  /** Closes engines no running check mirrors on, until one for stage s fits the budget. */
  private evictFor(s: PlanStage): void {
    const budget = this.o.memoryBudget;
    const size = this.o.engineBytes;
    if (budget === undefined || size === undefined) return;
    const inUse = new Set<string>();
    for (const sc of this.seqs.values()) for (const k of sc.checked) { const st = sc.stages[k]; if (st !== undefined) inUse.add(`${st.start}-${st.end}`); }
    const held = (): number => [...this.engines.keys()].reduce((a, key) => { const [a0, b0] = key.split('-').map(Number); return a + size(a0 as number, b0 as number); }, 0);
    for (const key of [...this.engines.keys()]) {
      if (held() + size(s.start, s.end) <= budget) return;
      if (inUse.has(key)) continue;
      const e = this.engines.get(key);
      this.engines.delete(key);
      void e?.then((x) => x.close(), () => undefined);
    }
  }

  private engine(s: PlanStage): Promise<ShardEngine> {
    const key = `${s.start}-${s.end}`;
    let e = this.engines.get(key);
    if (e === undefined) {
      this.evictFor(s);
      e = this.o.createEngine(s.start, s.end);
      this.engines.set(key, e);
      this.stats.peakEngines = Math.max(this.stats.peakEngines, this.engines.size);
      e.catch(() => this.engines.delete(key));
    }
    return e;
  }
}
