// The layer-range planner: pure, deterministic, unit-tested without a cluster.
//
// Stage k runs layers [start, end) on one node. A plan must (1) fit every stage in its node's
// memory budget — weights of its layers as built (model-costs.ts) + their KV reserve, plus the
// embedding on the first stage and final norm + lm_head on the last, plus the runtime's overhead —
// and (2) make the slowest
// stage as fast as possible: minimise max over stages of cost(stage) / speed(node), where a
// layer's cost is the bytes of weights it streams per token (decode is memory-bound) and the last
// stage also pays for the lm_head. Pipeline throughput is set by that slowest stage (GPipe's
// bottleneck argument), which is why uneven devices get uneven ranges.
//
// Nodes are ordered by id, so the same inputs give the same plan; a dynamic programme over
// (node, layers covered) finds the optimum exactly (n·L² steps: trivial for n ≤ 64, L ≤ 256).
// Nodes may get no layers (a slow or small node is left idle when using it would not help).
//
// Prefill (issue 22): a prompt's chunks flow through the stages concurrently, so its time to first
// token is set by the stage with the most prefill work, and prefill work is the layers alone: the
// head runs for one position per prompt. The split balanced for decode puts the head's cost on the
// last stage and so piles layers on the first (0.5B int4, 2 equal nodes: [0,17)/[17,24), stage 0
// prefilling 71% of every prompt: TTFT 0.77× one node's). Single-stream decode does not depend on
// the split at all between equal nodes (the stages run one after another), only a full pipeline's
// capacity does; so with `prefillMargin`, among the splits whose slowest decode stage is within
// that fraction of the best one (and whose single-stream decode time is within
// PREFILL_SUM_MARGIN of it), the one whose slowest stage prefills fastest is chosen (a second DP
// with the decode bound as a cap).

import { HearthError } from '../errors/index.ts';

export interface ModelCost {
  readonly numLayers: number;
  /** Bytes of weights held per layer (fp32, or int4 + scales). */
  readonly layerBytes: readonly number[];
  /** KV-cache bytes per layer at the planned context budget. */
  readonly kvBytesPerLayer: number;
  /** Extra bytes on the first stage (token embedding). */
  readonly firstBytes: number;
  /** Extra bytes on the last stage (final norm + lm_head; the embedding when tied). */
  readonly lastBytes: number;
  /** Memory-only bytes per layer on top of layerBytes (onnxruntime's prepacked int4 block sums). */
  readonly layerPrepackBytes?: readonly number[];
  /** Memory-only bytes on top of lastBytes (the head's prepacked block sums). */
  readonly lastPrepackBytes?: number;
  /** The part of firstBytes that an offer need not cover: a lookup-only embedding table is mapped
   *  from its file, only the rows looked up are paged in, and those are clean file pages the
   *  kernel reclaims under pressure (never an out-of-memory kill). */
  readonly firstMappedBytes?: number;
  /** Bytes firstBytes and lastBytes share when one stage holds both (a tied head that reads the
   *  embedding table's bytes): counted once there. */
  readonly firstLastSharedBytes?: number;
  /** Bytes of weights a token's step reads per layer when less than layerBytes (a MoE layer reads
   *  k of its E experts: moe-costs.ts); the per-token cost. Default: layerBytes. */
  readonly layerReadBytes?: readonly number[];
  /** Per-token cost of the last stage's head, in the same unit as layerBytes. */
  readonly headCost: number;
  /** Fixed bytes every stage needs besides weights and KV (runtime, activations). */
  readonly stageOverheadBytes: number;
}

export interface PlanNode {
  readonly id: string;
  readonly name: string;
  /** Bytes this node offers for weights + KV. */
  readonly memory: number;
  /** Relative speed (GFLOP/s from the worker's probe); cost / speed = time. */
  readonly speed: number;
}

export interface PlannedStage {
  readonly node: string;
  readonly start: number;
  readonly end: number;
  /** Bytes the stage needs (weights + KV + overhead). */
  readonly bytes: number;
  /** cost / speed: the per-token time of this stage in planner units. */
  readonly time: number;
}

export interface StagePlan {
  readonly stages: readonly PlannedStage[];
  /** max over stages of time. */
  readonly bottleneck: number;
}

const GB = 1e9;

function byId(nodes: readonly PlanNode[]): PlanNode[] {
  return [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Prefix sums so the bytes/cost of any range is O(1). */
function prefix(model: ModelCost): { bytes: Float64Array; cost: Float64Array } {
  const L = model.numLayers;
  const bytes = new Float64Array(L + 1);
  const cost = new Float64Array(L + 1);
  for (let i = 0; i < L; i++) {
    const b = model.layerBytes[i] ?? 0;
    bytes[i + 1] = (bytes[i] as number) + b + (model.layerPrepackBytes?.[i] ?? 0) + model.kvBytesPerLayer;
    cost[i + 1] = (cost[i] as number) + (model.layerReadBytes?.[i] ?? b);
  }
  return { bytes, cost };
}

export function stageBytes(model: ModelCost, start: number, end: number): number {
  let b = model.stageOverheadBytes;
  for (let i = start; i < end; i++) b += (model.layerBytes[i] ?? 0) + (model.layerPrepackBytes?.[i] ?? 0) + model.kvBytesPerLayer;
  return b + edgeBytes(model, start, end);
}

/** First/last-stage extras of [start, end): embedding, final norm + head, counted once if shared. */
function edgeBytes(model: ModelCost, start: number, end: number): number {
  const first = start === 0;
  const last = end === model.numLayers;
  let b = 0;
  if (first) b += model.firstBytes - (model.firstMappedBytes ?? 0);
  if (last) b += model.lastBytes + (model.lastPrepackBytes ?? 0);
  // A tied head over the table touches every page: the table's counted part is the head's.
  if (first && last) b -= Math.min(model.firstLastSharedBytes ?? 0, model.firstBytes - (model.firstMappedBytes ?? 0));
  return b;
}

/** Total bytes of the whole model as one stage. */
export function modelBytes(model: ModelCost): number {
  return stageBytes(model, 0, model.numLayers);
}

export interface PlanOptions {
  /** > 0: trade up to this fraction of decode capacity (the slowest decode stage) for a split
   *  whose slowest stage prefills fastest; 0 (default): the decode optimum. */
  readonly prefillMargin?: number;
}

/** The decode capacity the cluster gives up for prefill: on the 0.5B int4 shape over 2 equal nodes
 *  a 25% bound allows [0,12)/[12,24), every stage prefilling half of a prompt (issue 22's goal: TTFT
 *  on 2 nodes ≤ 0.6× one node's), while 8+ concurrent streams keep ≥ 80% of their best rate. */
export const PREFILL_MARGIN = 0.25;
/** How much slower single-stream decode (the sum of the stage times) may get for prefill: between
 *  unequal nodes moving a layer to the slower one costs every token; a few % at most. */
export const PREFILL_SUM_MARGIN = 0.05;

/** What a stage costs per token in one phase (decode or prefill). */
interface Phase {
  /** Cost of layers [s, e) (+ the head if e is the last layer), before dividing by a node's speed. */
  cost(s: number, e: number): number;
}

interface Dp {
  readonly bottleneck: number;
  readonly stages: readonly { node: PlanNode; start: number; end: number }[];
}

/**
 * Min over contiguous splits of the slowest stage's `phase` time, over `nodes` in order, where a
 * stage must fit its node's memory and its decode time must be ≤ `cap`; ties: fewer stages, then
 * the smaller `tie` bottleneck (the decode one when balancing prefill).
 */
function solve(model: ModelCost, nodes: readonly PlanNode[], bytes: Float64Array, phase: Phase, decode: Phase, cap: number, tie: Phase | null): Dp | null {
  const L = model.numLayers;
  const n = nodes.length;
  const INF = Number.POSITIVE_INFINITY;
  // best[i][l]: the smallest bottleneck covering layers [0, l) with nodes[0..i); count the stage
  // count (fewer stages win ties: one hop less for the same bottleneck); second the tie-break.
  const best: Float64Array[] = [];
  const second: Float64Array[] = [];
  const count: Int32Array[] = [];
  const from: Int32Array[] = []; // layer where node i-1's stage starts; -1 = node skipped
  for (let i = 0; i <= n; i++) {
    best.push(new Float64Array(L + 1).fill(INF));
    second.push(new Float64Array(L + 1).fill(INF));
    count.push(new Int32Array(L + 1));
    from.push(new Int32Array(L + 1).fill(-1));
  }
  (best[0] as Float64Array)[0] = 0;
  (second[0] as Float64Array)[0] = 0;
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= b * 1e-12;
  for (let i = 0; i < n; i++) {
    const node = nodes[i] as PlanNode;
    const bi = best[i] as Float64Array;
    const si = second[i] as Float64Array;
    const ci = count[i] as Int32Array;
    const bn = best[i + 1] as Float64Array;
    const sn = second[i + 1] as Float64Array;
    const cn = count[i + 1] as Int32Array;
    const fn = from[i + 1] as Int32Array;
    for (let l = 0; l <= L; l++) { bn[l] = bi[l] as number; sn[l] = si[l] as number; cn[l] = ci[l] as number; fn[l] = -1; }
    if (!(node.speed > 0) || !(node.memory > 0)) continue;
    for (let s = 0; s < L; s++) {
      const prev = bi[s] as number;
      if (prev === INF) continue;
      for (let e = s + 1; e <= L; e++) {
        const need = (bytes[e] as number) - (bytes[s] as number) + model.stageOverheadBytes + edgeBytes(model, s, e);
        if (need > node.memory) break; // longer ranges only need more
        if (decode.cost(s, e) / node.speed > cap) break; // and cost more
        const v = Math.max(prev, phase.cost(s, e) / node.speed);
        const w = tie === null ? 0 : Math.max(si[s] as number, tie.cost(s, e) / node.speed);
        const c = (ci[s] as number) + 1;
        const cur = bn[e] as number;
        const better = v < cur * (1 - 1e-12) || (close(v, cur) && (c < (cn[e] as number) || (c === cn[e] && w < (sn[e] as number) * (1 - 1e-12))));
        if (better) { bn[e] = v; sn[e] = w; cn[e] = c; fn[e] = s; }
      }
    }
  }
  const total = (best[n] as Float64Array)[L] as number;
  if (total === INF) return null;
  const stages: { node: PlanNode; start: number; end: number }[] = [];
  let l = L;
  for (let i = n; i > 0 && l > 0; i--) {
    const s = (from[i] as Int32Array)[l] as number;
    if (s < 0) continue;
    stages.push({ node: nodes[i - 1] as PlanNode, start: s, end: l });
    l = s;
  }
  stages.reverse();
  return { bottleneck: total, stages };
}

/** The optimal plan, or null when no contiguous split fits the budgets. */
export function tryPlan(model: ModelCost, nodesIn: readonly PlanNode[], opts: PlanOptions = {}): StagePlan | null {
  const nodes = byId(nodesIn);
  const L = model.numLayers;
  if (L <= 0 || nodes.length === 0) return null;
  const { bytes, cost } = prefix(model);
  const decode: Phase = { cost: (s, e) => (cost[e] as number) - (cost[s] as number) + (e === L ? model.headCost : 0) };
  const first = solve(model, nodes, bytes, decode, decode, Number.POSITIVE_INFINITY, null);
  if (first === null) return null;
  let chosen = first;
  const margin = opts.prefillMargin ?? 0;
  if (margin > 0 && first.stages.length > 0) {
    // Prefill runs the layers only (one position of head per prompt): the same weights, so the
    // same per-layer cost, without the head.
    const prefill: Phase = { cost: (s, e) => (cost[e] as number) - (cost[s] as number) };
    const alt = solve(model, nodes, bytes, prefill, decode, first.bottleneck * (1 + margin), decode);
    const sum = (d: Dp): number => d.stages.reduce((a, st) => a + decode.cost(st.start, st.end) / st.node.speed, 0);
    if (alt !== null && sum(alt) <= sum(first) * (1 + PREFILL_SUM_MARGIN)) chosen = alt;
  }
  const stages: PlannedStage[] = chosen.stages.map((st) => ({ node: st.node.id, start: st.start, end: st.end,
    bytes: stageBytes(model, st.start, st.end), time: decode.cost(st.start, st.end) / st.node.speed }));
  return { stages, bottleneck: Math.max(...stages.map((st) => st.time)) };
}

/** The optimal plan; throws HEARTH_ERR_NO_PLAN saying how much memory is missing and where. */
export function planStages(model: ModelCost, nodes: readonly PlanNode[]): StagePlan {
  const plan = tryPlan(model, nodes);
  if (plan !== null) return plan;
  throw new HearthError('HEARTH_ERR_NO_PLAN', [explainNoPlan(model, nodes)]);
}

/** GB for real models; MB below 1 GB so small figures stay readable. */
const fmt = (b: number): string => (b >= GB ? `${(b / GB).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);

/**
 * Why nothing fits: the smallest amount of extra memory on a single node that would make a plan
 * possible (found by bisection on that node's budget), naming that node.
 */
export function explainNoPlan(model: ModelCost, nodesIn: readonly PlanNode[]): string {
  const nodes = byId(nodesIn).filter((n) => n.speed > 0);
  const need = modelBytes(model);
  const offer = nodes.reduce((a, n) => a + Math.max(0, n.memory), 0);
  const whole = `the model needs ${fmt(need)} for weights + KV`;
  if (nodes.length === 0) return `no worker has joined (${whole}); start one with \`hearth worker --join …\``;
  let bestNode: PlanNode | null = null;
  let bestExtra = Number.POSITIVE_INFINITY;
  for (const node of nodes) {
    let lo = 0;
    let hi = need + model.stageOverheadBytes;
    const others = nodes.filter((x) => x !== node);
    const fits = (extra: number): boolean => tryPlan(model, [...others, { ...node, memory: Math.max(0, node.memory) + extra }]) !== null;
    if (!fits(hi)) continue;
    for (let it = 0; it < 40 && hi - lo > 1e6; it++) {
      const mid = (lo + hi) / 2;
      if (fits(mid)) hi = mid; else lo = mid;
    }
    if (hi < bestExtra) { bestExtra = hi; bestNode = node; }
  }
  const offers = nodes.map((n) => `${n.name} ${fmt(n.memory)}`).join(', ');
  if (bestNode === null) return `${whole}; the ${nodes.length} node(s) offer ${fmt(offer)} (${offers})`;
  return `${fmt(bestExtra)} missing: node ${bestNode.name} (${bestNode.id}) offers ${fmt(bestNode.memory)} and would need ${fmt(bestNode.memory + bestExtra)}; ${whole}, the ${nodes.length} node(s) offer ${fmt(offer)} (${offers})`;
}
