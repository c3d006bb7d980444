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

/** The optimal plan, or null when no contiguous split fits the budgets. */
export function tryPlan(model: ModelCost, nodesIn: readonly PlanNode[]): StagePlan | null {
  const nodes = byId(nodesIn);
  const L = model.numLayers;
  const n = nodes.length;
  if (L <= 0 || n === 0) return null;
  const { bytes, cost } = prefix(model);
  const INF = Number.POSITIVE_INFINITY;
  // best[i][l]: the smallest bottleneck covering layers [0, l) with nodes[0..i); stages[i][l] the
  // stage count (fewer stages win ties: one hop less for the same bottleneck).
  const best: Float64Array[] = [];
  const count: Int32Array[] = [];
  const from: Int32Array[] = []; // layer where node i-1's stage starts; -1 = node skipped
  for (let i = 0; i <= n; i++) {
    best.push(new Float64Array(L + 1).fill(INF));
    count.push(new Int32Array(L + 1));
    from.push(new Int32Array(L + 1).fill(-1));
  }
  (best[0] as Float64Array)[0] = 0;
  for (let i = 0; i < n; i++) {
    const node = nodes[i] as PlanNode;
    const bi = best[i] as Float64Array;
    const ci = count[i] as Int32Array;
    const bn = best[i + 1] as Float64Array;
    const cn = count[i + 1] as Int32Array;
    const fn = from[i + 1] as Int32Array;
    for (let l = 0; l <= L; l++) { bn[l] = bi[l] as number; cn[l] = ci[l] as number; fn[l] = -1; }
    if (!(node.speed > 0) || !(node.memory > 0)) continue;
    for (let s = 0; s < L; s++) {
      const prev = bi[s] as number;
      if (prev === INF) continue;
      for (let e = s + 1; e <= L; e++) {
        const need = (bytes[e] as number) - (bytes[s] as number) + model.stageOverheadBytes + edgeBytes(model, s, e);
        if (need > node.memory) break; // longer ranges only need more
        const t = ((cost[e] as number) - (cost[s] as number) + (e === L ? model.headCost : 0)) / node.speed;
        const v = Math.max(prev, t);
        const c = (ci[s] as number) + 1;
        const cur = bn[e] as number;
        if (v < cur * (1 - 1e-12) || (Math.abs(v - cur) <= cur * 1e-12 && c < (cn[e] as number))) {
          bn[e] = v; cn[e] = c; fn[e] = s;
        }
      }
    }
  }
  const total = (best[n] as Float64Array)[L] as number;
  if (total === INF) return null;
  const stages: PlannedStage[] = [];
  let l = L;
  for (let i = n; i > 0 && l > 0; i--) {
    const s = (from[i] as Int32Array)[l] as number;
    if (s < 0) continue;
    const node = nodes[i - 1] as PlanNode;
    stages.push({ node: node.id, start: s, end: l, bytes: stageBytes(model, s, l),
      time: ((cost[l] as number) - (cost[s] as number) + (l === L ? model.headCost : 0)) / node.speed });
    l = s;
  }
  stages.reverse();
  return { stages, bottleneck: total };
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
