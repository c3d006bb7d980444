// The routed MLP of a mixture-of-experts layer (qwen3_moe, mixtral) for the shard graph: softmax
// over every expert's router logit, the top k (renormalised when the config says), each chosen
// expert's SwiGLU weighted by its probability and summed (transformers' Qwen3MoeSparseMoeBlock,
// MixtralSparseMoeBlock; reference.ts routedMlp is the oracle).
//
// Why two paths (measured in bench/moe-ops.ts, facts in ../shared/ONNXRUNTIME.md "MoE"):
// - fp32: com.microsoft MoE does exactly this routing on the CPU (softmax over all E, partial sort,
//   optional renormalisation) and matches a float64 JS computation to 3e-7; its fc1 is gate|up
//   interleaved row by row (swiglu_fusion 1 — the only fusion the CPU kernel takes), fc2 the HF
//   down weights [E, H, I] as stored.
// - int4: com.microsoft QMoE is correct with renormalisation but 30–80× slower than MatMulNBits on
//   this CPU build at decode (it does not renormalise as the reference when normalize is 0), so
//   int4 experts are our own graph (moe-int4-sorted.ts): router → Softmax → TopK, the (token,
//   expert) pairs sorted by expert, the routed rows gathered once, and each expert's MatMulNBits
//   gate|up and down run on its slice (0 rows when nobody picked it). A token reads k of E experts;
//   a batch reads the union of its rows' experts, and computes k rows' worth per token. The
//   earlier graph, one `If` per expert (int4ExpertsIfGraph), stays for bench/moe-ops.ts to compare:
//   it gives the same results to fp32 rounding and is 1.3-1.9x slower at the 30B-A3B layer shape.

import type { Checkpoint, ModelConfig } from '../types.ts';
import { moeTensorNames } from '../tensor-names.ts';
import { DT, MS_DOMAIN, type DataType, type Dim, type GraphBuilder } from './graph.ts';
import type { WeightReader } from './weights.ts';
import { int4ExpertsSortedGraph } from './moe-int4-sorted.ts';

export interface MoeGraphContext {
  readonly g: GraphBuilder;
  readonly w: WeightReader;
  readonly ckpt: Checkpoint;
  readonly quant: 'none' | 'int4';
  /** int4 block size along K and MatMulNBits accuracy_level (as the rest of the shard). */
  readonly block: number;
  readonly accuracyLevel: number;
}

/** SwiGLU attributes for com.microsoft MoE: silu(g) * u is swiglu with alpha 1, beta 0, no clamp. */
const SWIGLU = { activation_type: 'swiglu', swiglu_fusion: 1, activation_alpha: { float: 1 }, activation_beta: { float: 0 } } as const;

/**
 * The routed MLP of layer `layer` applied to `x` (the post-attention-normed activations, [N, H] or
 * [B, S, H]); returns the MLP output in x's shape (the caller adds the residual).
 */
export function moeMlp(ctx: MoeGraphContext, layer: number, x: string): string {
  const { g, ckpt } = ctx;
  const cfg = ckpt.config;
  const moe = cfg.moe;
  if (moe === undefined) throw new Error(`moeMlp: ${cfg.family} has no experts`);
  const h = cfg.hiddenSize;
  const names = moeTensorNames(cfg, layer);
  const shape = g.op('Shape', [x]);
  const x2 = g.op('Reshape', [x, g.i64([-1, h])]);
  // The router stays fp32 in both paths: routing is a discrete choice, and an int4 router moves
  // near-ties to other experts.
  const router = g.init(`l${layer}.router`, DT.float, [moe.numExperts, h], ctx.w.tensor(names.router));
  const logits = g.op('Gemm', [x2, router], { transB: 1 });
  const y = ctx.quant === 'int4' ? int4Experts(ctx, cfg, layer, x2, logits) : fp32Experts(ctx, cfg, layer, x2, logits);
  return g.op('Reshape', [y, shape]);
}

/** fp32: one com.microsoft MoE over fc1 [E, 2I, H] (gate/up rows interleaved) and fc2 [E, H, I]. */
function fp32Experts(ctx: MoeGraphContext, cfg: ModelConfig, layer: number, x2: string, logits: string): string {
  const { g, w } = ctx;
  const moe = cfg.moe!;
  const h = cfg.hiddenSize;
  const inter = moe.expertIntermediateSize;
  const names = moeTensorNames(cfg, layer);
  const fc1 = new Float32Array(moe.numExperts * 2 * inter * h);
  const fc2 = new Float32Array(moe.numExperts * h * inter);
  for (let e = 0; e < moe.numExperts; e++) {
    const gate = w.tensor(names.gate(e)).slice();
    const up = w.tensor(names.up(e));
    const base = e * 2 * inter * h;
    for (let i = 0; i < inter; i++) {
      fc1.set(gate.subarray(i * h, (i + 1) * h), base + 2 * i * h);
      fc1.set(up.subarray(i * h, (i + 1) * h), base + (2 * i + 1) * h);
    }
    fc2.set(w.tensor(names.down(e)), e * h * inter);
  }
  const w1 = g.init(`l${layer}.experts.fc1`, DT.float, [moe.numExperts, 2 * inter, h], fc1);
  const w2 = g.init(`l${layer}.experts.fc2`, DT.float, [moe.numExperts, h, inter], fc2);
  return g.op('MoE', [x2, logits, w1, '', w2], { ...SWIGLU, k: moe.topK, normalize_routing_weights: moe.normTopK ? 1 : 0 }, MS_DOMAIN);
}

/** What the int4 expert graph needs to know (a MoeConfig plus the layer's sizes and int4 settings). */
export interface Int4ExpertsSpec {
  readonly numExperts: number;
  readonly topK: number;
  readonly normTopK: boolean;
  readonly hidden: number;
  readonly inter: number;
  readonly block: number;
  readonly accuracyLevel: number;
  /** If graph only: run each expert over only its routed rows (default), or over every row, masked (bench). */
  readonly gatherRows?: boolean;
}

/** Initializer names of one expert's int4 weights: gate|up fused [2I, H] and down [H, I] (MatMulNBits layout). */
export interface Int4Expert {
  readonly gateUp: readonly [qweight: string, scales: string];
  readonly down: readonly [qweight: string, scales: string];
}

function int4Experts(ctx: MoeGraphContext, cfg: ModelConfig, layer: number, x2: string, logits: string): string {
  const { g, w, block } = ctx;
  const moe = cfg.moe!;
  const names = moeTensorNames(cfg, layer);
  const spec = { ...moe, hidden: cfg.hiddenSize, inter: moe.expertIntermediateSize, block, accuracyLevel: ctx.accuracyLevel };
  return int4ExpertsSortedGraph(g, x2, logits, spec, (e) => {
    const tag = `l${layer}.e${e}`;
    const gu = w.fusedInt4([names.gate(e), names.up(e)], undefined, block);
    const gateUp = [g.init(`${tag}.gate_up.qweight`, DT.uint8, [gu.rows, gu.blocks, block / 2], gu.packed), g.init(`${tag}.gate_up.scales`, DT.float, [gu.rows * gu.blocks], gu.scales)] as const;
    const dn = w.fusedInt4([names.down(e)], undefined, block);
    const down = [g.init(`${tag}.down.qweight`, DT.uint8, [dn.rows, dn.blocks, block / 2], dn.packed), g.init(`${tag}.down.scales`, DT.float, [dn.rows * dn.blocks], dn.scales)] as const;
    return { gateUp, down };
  });
}

/**
 * int4 experts over x2 [N, H] with router logits [N, E]: routing weights as a dense [N, E] mask,
 * then each expert behind an If that runs only when the batch routes a row to it (`expert(e)`
 * makes expert e's initializers). Rows are padded to an even count first: MatMulNBits rounds the
 * last row of an odd count differently (see build-shard.ts nbits), and a row's bits must not
 * depend on its batch. Superseded by int4ExpertsSortedGraph (same results, faster); kept for
 * bench/moe-ops.ts to compare against.
 */
export function int4ExpertsIfGraph(g: GraphBuilder, x2: string, logits: string, spec: Int4ExpertsSpec, expert: (e: number) => Int4Expert): string {
  const { hidden: h, inter, block } = spec;
  const probs = g.op('Softmax', [logits], { axis: -1 });
  const [top, idx] = g.node('TopK', [probs, g.i64([spec.topK])], 2, { axis: -1, largest: 1, sorted: 1 }) as [string, string];
  const weights = spec.normTopK ? g.op('Div', [top, g.op('ReduceSum', [top, g.i64([-1])], { keepdims: 1 })]) : top;
  const zeroMask = g.op('Mul', [logits, g.f32(0)]);
  const rows = g.op('Slice', [g.op('Shape', [x2]), g.i64([0]), g.i64([1])]);
  const pads = g.op('Concat', [g.i64([0, 0]), g.op('Mod', [rows, g.i64([2])]), g.i64([0])], { axis: 0 });
  const mask = g.op('Pad', [g.op('ScatterElements', [zeroMask, idx, weights], { axis: -1 }), pads]); // [Np, E]
  const xp = g.op('Pad', [x2, pads]); // [Np, H]
  const used = g.op('Greater', [g.op('ReduceMax', [mask, g.i64([0])], { keepdims: 0 }), g.f32(0)]); // [E]
  const zeros = g.op('Mul', [xp, g.f32(0)]);
  const nbits = (a: string, [q, s]: readonly [string, string], K: number, N: number): string =>
    g.op('MatMulNBits', [a, q, s], { K, N, bits: 4, block_size: block, accuracy_level: spec.accuracyLevel }, MS_DOMAIN);
  const outs: string[] = [];
  for (let e = 0; e < spec.numExperts; e++) {
    const ex = expert(e);
    const col = g.op('Slice', [mask, g.i64([e]), g.i64([e + 1]), g.i64([1])]); // [Np, 1]
    const masked = (): (readonly [string, DataType, readonly Dim[]])[] => {
      const [gate, up] = g.node('Split', [nbits(xp, ex.gateUp, h, 2 * inter), g.i64([inter, inter])], 2, { axis: -1 }) as [string, string];
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
      return [[g.op('Mul', [nbits(act, ex.down, inter, h), col]), DT.float, ['rows', h]]];
    };
    const run = spec.gatherRows === false ? g.subgraph(`e${e}.run`, masked) : g.subgraph(`e${e}.run`, () => {
      // Only the rows routed here (a prefill chunk's rows spread over many experts), padded to an
      // even count; the results are scattered back into a zero [Np, H].
      const sel = g.op('Reshape', [g.op('NonZero', [g.op('Reshape', [g.op('Greater', [col, g.f32(0)]), g.i64([-1])])]), g.i64([-1])]); // [n]
      const n = g.op('Shape', [sel]);
      const xs = g.op('Pad', [g.op('Gather', [xp, sel], { axis: 0 }), g.op('Concat', [g.i64([0, 0]), g.op('Mod', [n, g.i64([2])]), g.i64([0])], { axis: 0 })]);
      const [gate, up] = g.node('Split', [nbits(xs, ex.gateUp, h, 2 * inter), g.i64([inter, inter])], 2, { axis: -1 }) as [string, string];
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
      const ys = g.op('Mul', [g.op('Slice', [nbits(act, ex.down, inter, h), g.i64([0]), n, g.i64([0])]), g.op('Gather', [col, sel], { axis: 0 })]);
      return [[g.op('ScatterND', [zeros, g.op('Unsqueeze', [sel, g.i64([1])]), ys]), DT.float, ['rows', h]]];
    });
    const skip = g.subgraph(`e${e}.skip`, () => [[g.op('Identity', [zeros]), DT.float, ['rows', h]]]);
    const cond = g.op('Squeeze', [g.op('Gather', [used, g.i64([e])]), g.i64([0])]);
    outs.push(g.op('If', [cond], { then_branch: { graph: run }, else_branch: { graph: skip } }));
  }
  const sum = outs.length === 1 ? (outs[0] as string) : g.op('Sum', outs);
  return g.op('Slice', [sum, g.i64([0]), rows, g.i64([0])]);
}
