// Chooses the plan predicted to decode fastest (issue 10, "never slower than one device"): pure,
// deterministic, unit-tested without a cluster.
//
// Time model of one decode token with two hops per token (the last stage feeds stage 0):
//   cycle = Σ_stages (overhead + cost(stage) × msPerCost(node)) + Σ_hops (leg(a) + leg(b))
// where cost is the bytes of weights a stage streams per token (planner.ts), msPerCost is the
// node's measured time per cost byte (from its served steps) or, before it has served, its probe
// speed scaled by a constant fitted on the measured nodes (or by DEFAULT_MS_PER_MB_AT_1_GFLOPS),
// and leg is half the node's probe round trip over the bus (node → nats-server → node is two
// legs). A one-stage plan makes no hop. Single-stream decode tok/s = 1000 / cycle; the capacity
// of a full pipeline = 1000 / slowest stage.
//
// Candidates: the balanced split over all nodes (planner.ts: slowest stage as fast as possible),
// the same over every subset reached by leaving nodes out one at a time while that helps, and
// every single node that holds the model. 'fastest' picks the best single-stream prediction, but
// a plan within `tolerance` of it with more capacity (more streams served at once) wins; so equal
// nodes on a fast link still share the model, while a slow or far node is left out. 'balanced'
// keeps the planner's split over every useful node (tests that exercise splitting use it).

import { PREFILL_MARGIN, stageBytes, tryPlan, type ModelCost, type PlanNode, type StagePlan } from './planner.ts';

/** Milliseconds per MB of cost at a probe speed of 1 GFLOP/s: fitted on the 0.5B int4 shape on a
 *  2-core x86 VM (17 layers = 158 MB of cost → 11.8 ms at probe speed 1; the last stage, 7 layers
 *  + the tied head = 150 MB → 10.5 ms). Used only until some node has measured itself. */
export const DEFAULT_MS_PER_MB_AT_1_GFLOPS = 0.075;
/** A stage's decode ms per MB of cost ÷ its node's decode probe (runtime/decode-probe.ts), used
 *  until some node has measured both: the probe times only the int4 matmuls, a stage also runs
 *  attention, norms, the hand-off to its engine thread. Fitted on a 2-core AMD EPYC VM, 1 thread:
 *  stages of the 0.5B, 3B and 8B int4 shapes decode at 0.076-0.081 ms per MB of cost; the probe,
 *  rounded to quarter-octaves as workers announce it, read 0.0625 in most of 16 starts (0.0526
 *  and 0.0743 in the rest), so 1.25 puts the common reading on the stage's time and the others
 *  within ~20% of it. */
export const PROBE_TO_STAGE = 1.25;
/** Fixed time a stage spends on a step besides its layers (worker-thread hand-off, session run). */
export const STAGE_OVERHEAD_MS = 0.3;
/** Leg assumed for a node not probed yet (loopback figure). */
export const DEFAULT_LEG_MS = 0.3;

export const PLAN_OBJECTIVES = ['fastest', 'balanced'] as const;
export type PlanObjective = (typeof PLAN_OBJECTIVES)[number];

export interface NodePerf {
  /** Measured ms per MB of cost on this node (decode, one sequence), or null. */
  readonly msPerMb: number | null;
  /** Half the probe round trip gateway ↔ node over the bus (ms), or null before a probe. */
  readonly legMs: number | null;
  /** Its decode probe's ms per MB of int4 weights (announce.decodeMsPerMb), or null/absent. */
  readonly probeMsPerMb?: number | null;
}

export interface PlanPrediction {
  /** Single-stream decode tok/s. */
  readonly tokS: number;
  /** Tokens/s with the pipeline full (every stage busy): 1000 / slowest stage. */
  readonly capacityTokS: number;
  readonly cycleMs: number;
  /** Predicted ms of each stage per token, in stage order. */
  readonly stageMs: readonly number[];
  /** Predicted ms of the hops per token. */
  readonly hopsMs: number;
  /** Gateway → stage 0 and last stage → gateway (off the per-token path, but every request's
   *  first token and every stream's tokens take it): breaks ties between equal plans. */
  readonly edgeMs: number;
}

export interface IdleNode {
  readonly node: string;
  readonly name: string;
  readonly why: string;
  /** Predicted tok/s of the best plan that uses it (null when none fits). */
  readonly withTokS: number | null;
}

export interface PlanChoice {
  readonly plan: StagePlan;
  readonly prediction: PlanPrediction;
  readonly idle: readonly IdleNode[];
  /** How the per-node speeds were obtained, for the log: 'measured' | 'probe'. */
  readonly basis: Readonly<Record<string, 'measured' | 'probe'>>;
}

export interface ChooseOptions {
  readonly objective?: PlanObjective;
  /** 'fastest': a plan this close to the best single-stream prediction may win on capacity. */
  readonly tolerance?: number;
}

function median(xs: number[]): number | null {
  xs.sort((a, b) => a - b);
  return xs.length > 0 ? (xs[Math.floor(xs.length / 2)] as number) : null;
}

/** ms per MB of cost for every node: measured; else its decode probe × a ratio fitted on the
 *  measured nodes that also probed (their measured ÷ probe), else PROBE_TO_STAGE; else (an older
 *  node, or one given --speed) its GFLOP/s speed × a constant fitted on the measured nodes (their
 *  ms/MB × speed), else DEFAULT_MS_PER_MB_AT_1_GFLOPS. */
export function msPerMbOf(nodes: readonly PlanNode[], perf: ReadonlyMap<string, NodePerf>): Map<string, { ms: number; measured: boolean }> {
  const bySpeed: number[] = [];
  const byProbe: number[] = [];
  for (const n of nodes) {
    const p = perf.get(n.id);
    const m = p?.msPerMb ?? null;
    if (m === null) continue;
    if (n.speed > 0) bySpeed.push(m * n.speed);
    if ((p?.probeMsPerMb ?? 0) > 0) byProbe.push(m / (p?.probeMsPerMb as number));
  }
  const k = median(bySpeed) ?? DEFAULT_MS_PER_MB_AT_1_GFLOPS;
  const r = median(byProbe) ?? PROBE_TO_STAGE;
  const out = new Map<string, { ms: number; measured: boolean }>();
  for (const n of nodes) {
    const p = perf.get(n.id);
    const m = p?.msPerMb ?? null;
    const probe = p?.probeMsPerMb ?? null;
    out.set(n.id, m !== null ? { ms: m, measured: true }
      : probe !== null && probe > 0 ? { ms: probe * r, measured: false }
        : { ms: n.speed > 0 ? k / n.speed : Number.POSITIVE_INFINITY, measured: false });
  }
  return out;
}

function rangeCost(model: ModelCost, start: number, end: number): number {
  let c = 0;
  for (let i = start; i < end; i++) c += model.layerBytes[i] ?? 0;
  if (end === model.numLayers) c += model.headCost;
  return c;
}

export function predictPlan(model: ModelCost, plan: StagePlan, nodes: readonly PlanNode[], perf: ReadonlyMap<string, NodePerf>): PlanPrediction {
  const speed = msPerMbOf(nodes, perf);
  const stageMs = plan.stages.map((s) => STAGE_OVERHEAD_MS + (rangeCost(model, s.start, s.end) / 1e6) * (speed.get(s.node)?.ms ?? Number.POSITIVE_INFINITY));
  const leg = (id: string): number => perf.get(id)?.legMs ?? DEFAULT_LEG_MS;
  let hopsMs = 0;
  const k = plan.stages.length;
  if (k > 1) {
    for (let i = 0; i < k; i++) hopsMs += leg(plan.stages[i]!.node) + leg(plan.stages[(i + 1) % k]!.node);
  }
  const cycleMs = stageMs.reduce((a, b) => a + b, 0) + hopsMs;
  const slowest = Math.max(...stageMs);
  const edgeMs = k === 0 ? 0 : leg(plan.stages[0]!.node) + leg(plan.stages[k - 1]!.node);
  return { tokS: 1000 / cycleMs, capacityTokS: 1000 / slowest, cycleMs, stageMs, hopsMs, edgeMs };
}

/** The balanced split over `nodes` with their measured or estimated speeds. */
function split(model: ModelCost, nodes: readonly PlanNode[], speeds: ReadonlyMap<string, { ms: number }>): StagePlan | null {
  // The planner's DP divides cost by speed: use 1 / (ms per MB) as the speed it balances.
  // Balanced for prefill too, within PREFILL_MARGIN of the best decode capacity (planner.ts).
  return tryPlan(model, nodes.map((n) => ({ ...n, speed: 1 / (speeds.get(n.id)?.ms ?? Number.POSITIVE_INFINITY) })), { prefillMargin: PREFILL_MARGIN });
}

interface Scored { readonly plan: StagePlan; readonly p: PlanPrediction }

function better(a: Scored, b: Scored, objective: PlanObjective, best: number, tolerance: number): boolean {
  if (objective === 'balanced') return false;
  const aIn = a.p.tokS >= best * (1 - tolerance);
  const bIn = b.p.tokS >= best * (1 - tolerance);
  if (aIn !== bIn) return aIn;
  if (!aIn) return a.p.tokS > b.p.tokS;
  if (Math.abs(a.p.capacityTokS - b.p.capacityTokS) > 1e-9 * b.p.capacityTokS) return a.p.capacityTokS > b.p.capacityTokS;
  if (a.plan.stages.length !== b.plan.stages.length) return a.plan.stages.length < b.plan.stages.length;
  if (Math.abs(a.p.tokS - b.p.tokS) > 1e-9 * b.p.tokS) return a.p.tokS > b.p.tokS;
  return a.p.edgeMs < b.p.edgeMs;
}

/**
 * The plan to serve, its prediction, and for every node left idle the reason. null when no plan
 * fits (planner.explainNoPlan says why).
 */
export function choosePlan(model: ModelCost, nodesIn: readonly PlanNode[], perf: ReadonlyMap<string, NodePerf>, opts: ChooseOptions = {}): PlanChoice | null {
  const objective = opts.objective ?? 'fastest';
  const tolerance = opts.tolerance ?? 0.1;
  const nodes = [...nodesIn].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const speeds = msPerMbOf(nodes, perf);
  // 'balanced' splits by the probe alone, as before measurements existed: the same nodes always
  // give the same plan (measured figures are noisy and would reshape it on every re-plan).
  const splitSpeeds = objective === 'balanced' ? msPerMbOf(nodes, new Map()) : speeds;
  const score = (set: readonly PlanNode[]): Scored | null => {
    const plan = split(model, set, splitSpeeds);
    return plan === null ? null : { plan: withTimes(model, plan, speeds), p: predictPlan(model, plan, nodes, perf) };
  };
  const all = score(nodes);
  if (all === null) return null;
  const candidates: Scored[] = [all];
  if (objective === 'fastest') {
    // Leave nodes out one at a time while some removal predicts faster.
    let cur = all;
    let set = nodes.filter((n) => cur.plan.stages.some((s) => s.node === n.id));
    for (;;) {
      let next: Scored | null = null;
      let nextSet: PlanNode[] = set;
      for (const drop of set) {
        const rest = set.filter((n) => n !== drop);
        const s = rest.length === 0 ? null : score(rest);
        if (s === null) continue;
        candidates.push(s);
        if (next === null || s.p.tokS > next.p.tokS) { next = s; nextSet = rest; }
      }
      if (next === null || next.p.tokS <= cur.p.tokS) break;
      cur = next;
      set = nextSet;
    }
    for (const n of nodes) {
      const s = score([n]);
      if (s !== null) candidates.push(s);
    }
  }
  const best = Math.max(...candidates.map((c) => c.p.tokS));
  let chosen = candidates[0] as Scored;
  for (const c of candidates.slice(1)) if (better(c, chosen, objective, best, tolerance)) chosen = c;

  const used = new Set(chosen.plan.stages.map((s) => s.node));
  const idle: IdleNode[] = [];
  for (const n of nodes) {
    if (used.has(n.id)) continue;
    idle.push(idleReason(model, n, nodes, used, perf, speeds, chosen, candidates));
  }
  const basis: Record<string, 'measured' | 'probe'> = {};
  for (const n of nodes) basis[n.id] = speeds.get(n.id)?.measured === true ? 'measured' : 'probe';
  return { plan: chosen.plan, prediction: chosen.p, idle, basis };
}

/** Stage times in ms (the DP's own unit is 1 / msPerMb). */
function withTimes(model: ModelCost, plan: StagePlan, speeds: ReadonlyMap<string, { ms: number }>): StagePlan {
  const stages = plan.stages.map((s) => ({ ...s, time: STAGE_OVERHEAD_MS + (rangeCost(model, s.start, s.end) / 1e6) * (speeds.get(s.node)?.ms ?? Number.POSITIVE_INFINITY) }));
  return { stages, bottleneck: Math.max(...stages.map((s) => s.time)) };
}

const f1 = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function idleReason(
  model: ModelCost, n: PlanNode, nodes: readonly PlanNode[], used: ReadonlySet<string>, perf: ReadonlyMap<string, NodePerf>,
  speeds: ReadonlyMap<string, { ms: number }>, chosen: Scored, candidates: readonly Scored[],
): IdleNode {
  const without = chosen.p.tokS;
  if (!(n.speed > 0)) return { node: n.id, name: n.name, why: `node ${n.name} left out: it reports no speed`, withTokS: null };
  const oneLayer = Math.min(...Array.from({ length: model.numLayers }, (_, i) => stageBytes(model, i, i + 1)));
  if (n.memory < oneLayer) {
    return { node: n.id, name: n.name, why: `node ${n.name} left out: it offers ${(n.memory / 1e6).toFixed(0)} MB and the smallest stage needs ${(oneLayer / 1e6).toFixed(0)} MB`, withTokS: null };
  }
  // The best plan with it: among the candidates that use it, else the chosen nodes plus it with
  // it forced to hold a share (the split over them that gives it the fewest layers it can take).
  let withIt: Scored | null = null;
  for (const c of candidates) if (c.plan.stages.some((s) => s.node === n.id) && (withIt === null || c.p.tokS > withIt.p.tokS)) withIt = c;
  if (withIt === null) {
    const set = nodes.filter((x) => used.has(x.id) || x.id === n.id);
    const forced = forcedSplit(model, set, n.id, speeds);
    if (forced !== null) withIt = { plan: forced, p: predictPlan(model, forced, nodes, perf) };
  }
  if (withIt === null) return { node: n.id, name: n.name, why: `node ${n.name} left out: no plan that uses it fits in memory`, withTokS: null };
  const w = withIt.p.tokS;
  const base = `node ${n.name} left out: the plan with it predicts ${f1(w)} tok/s, without it ${f1(without)}`;
  let why = base;
  if (w >= without * 0.995) {
    const cap = chosen.p.capacityTokS > withIt.p.capacityTokS * 1.005;
    why = cap
      ? `${base}, and the plan without it serves more streams at once (capacity ${f1(chosen.p.capacityTokS)} vs ${f1(withIt.p.capacityTokS)} tok/s)`
      : `${base}: no faster with it, so the plan keeps fewer nodes and shorter links`;
  }
  return { node: n.id, name: n.name, why, withTokS: w };
}

/** A split over `set` where node `must` holds at least one layer: the balanced split with its
 *  speed raised until it is used (bisection on a speed multiplier). */
function forcedSplit(model: ModelCost, set: readonly PlanNode[], must: string, speeds: ReadonlyMap<string, { ms: number }>): StagePlan | null {
  let mult = 1;
  for (let i = 0; i < 40; i++) {
    const scaled = new Map([...speeds].map(([id, s]) => [id, { ms: id === must ? s.ms / mult : s.ms }]));
    const p = split(model, set, scaled);
    if (p === null) return null;
    if (p.stages.some((s) => s.node === must)) return withTimes(model, p, speeds);
    mult *= 2;
  }
  return null;
}
