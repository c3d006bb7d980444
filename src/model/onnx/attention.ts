// The two attention implementations a shard graph can use.
//
// gqa:   onnxruntime's GroupQueryAttention (com.microsoft) with do_rotary. Ragged batches are native:
//        past is [B, Hkv, P, D] right-padded, seqlens_k[b] = total_b - 1, and present row b holds
//        its valid positions at [0, total_b). Needs headDim % 16 == 0 for its rotary kernel.
// fused: the default wherever head_dim is even. Past K/V arrive position-major [P, B, Hkv, D] (a
//        sequence's cache is one slab [capacity, Hkv, D], so a single sequence's past is a zero-copy
//        prefix view of it); FusedMatMul's transBatchB reads that layout as [B, Hkv, P, D] without a
//        transpose, and the Hq/Hkv query heads that share a KV head run as the rows of one matrix
//        product, so each KV byte is read once per step. GroupQueryAttention's CPU kernel instead
//        repacks K for every query head (7x for a 14/2 model): measured 3.3x slower at 2k positions
//        and 8.8x at 8k for one layer. The step's own K/V go out as new_key/new_value [B, S, Hkv, D]
//        and the caller appends them to its cache; attention over them is a small product of its own,
//        concatenated with the past scores before one softmax.
// plain: standard ONNX ops (MatMul/Softmax, rotate_half with gathered cos/sin, an additive mask),
//        exact for any head size. present = Concat(past, new) so row b's new positions sit at
//        [P, P+S) after its own past [0, L_b); the mask hides the padding in between.

import type { ModelConfig } from '../types.ts';
import { DT, MS_DOMAIN, type GraphBuilder } from './graph.ts';

export const ATTENTION_KINDS = ['fused', 'gqa', 'plain'] as const;
export type AttentionKind = (typeof ATTENTION_KINDS)[number];

/** Graph inputs shared by every layer of one attention kind. */
export interface AttentionContext {
  readonly kind: AttentionKind;
  /** gqa: seqlens_k int32 [B], total_seq_len int32 scalar, cos/sin caches. */
  readonly seqlensK?: string;
  readonly totalLen?: string;
  readonly cosCache: string;
  readonly sinCache: string;
  /** fused: position_ids int64 [B, S]; past mask [B, 1, 1, P] (0 or -inf); causal mask [G*S, S] of the step's own tokens (row g*S+s masks s' > s). */
  readonly positionIds?: string;
  readonly pastMask?: string;
  readonly causal?: string;
  /** fused: [P, S], splitting the softmax over past and own positions (computed once per step). */
  readonly splitSizes?: string;
  /** fused: whether the step has more than one position (a prefill chunk), as a 1-element bool. */
  readonly multi?: string;
  /** fused: bool [1], whether a multi-position step computes each position exactly as a
   *  one-position decode step would (bit for bit: speculative verification, replays). */
  readonly exact?: string;
  /** fused: the KV cache's element type (fp16 caches are cast to fp32 inside the graph). */
  readonly kvType?: number;
  /** plain: cos/sin gathered for the step's positions, [B, S, 1, D]; mask [B, 1, 1, S, T]. */
  readonly cosFull?: string;
  readonly sinFull?: string;
  readonly mask?: string;
}

/** Graph input names per kind (besides ids/hidden and the KV tensors). */
export const ATTN_INPUTS = {
  gqa: { seqlensK: 'seqlens_k', totalLen: 'total_seq_len' },
  fused: { positionIds: 'position_ids', pastMask: 'past_mask', causal: 'causal_mask', exact: 'exact_chunk' },
  plain: { positionIds: 'position_ids', mask: 'attn_mask' },
} as const;

/**
 * The rotary cos/sin caches [positions, headDim/2] (rope.ts) are graph inputs, fed by the session
 * on every step, not initializers: their rows follow the memory the stage is given (the positions
 * its KV allowance can hold, see src/runtime/rope-rows.ts), so one built shard serves any context
 * and a plan that moves a stage's KV allowance never rebuilds (requantizes) it. Issue 20: 32,768
 * rows cost 16.8 MB a stage at head_dim 128, more than a 60% offer had left on a 3B model.
 */
export const ROPE_INPUTS = { cos: 'rope_cos', sin: 'rope_sin' } as const;

export function attentionContext(g: GraphBuilder, cfg: ModelConfig, kind: AttentionKind, kvType: number = DT.float): AttentionContext {
  const half = cfg.headDim / 2;
  const cosCache = g.input(ROPE_INPUTS.cos, DT.float, ['rope_positions', half]);
  const sinCache = g.input(ROPE_INPUTS.sin, DT.float, ['rope_positions', half]);
  if (kind === 'fused') {
    const positionIds = g.input(ATTN_INPUTS.fused.positionIds, DT.int64, ['batch', 'seq']);
    const pastMask = g.input(ATTN_INPUTS.fused.pastMask, DT.float, ['batch', 1, 1, 'past']);
    const causal = g.input(ATTN_INPUTS.fused.causal, DT.float, ['rows', 'seq']);
    const exact = g.input(ATTN_INPUTS.fused.exact, DT.bool, [1]);
    const shape = (t: string, i: number): string => g.op('Slice', [g.op('Shape', [t]), g.i64([i]), g.i64([i + 1])]);
    const splitSizes = g.op('Concat', [shape(pastMask, 3), shape(causal, 1)], { axis: 0 });
    const multi = g.op('Greater', [shape(causal, 1), g.i64([1])]);
    // No [B, 1, G*S, P+S] mask here: it is as large as a prefill chunk's scores, and a node of the
    // main graph runs every step, decode included. The verify branch builds it (fullMask below).
    return { kind, cosCache, sinCache, positionIds, pastMask, causal, splitSizes, multi, exact, kvType };
  }
  if (kind === 'gqa') {
    const seqlensK = g.input(ATTN_INPUTS.gqa.seqlensK, DT.int32, ['batch']);
    const totalLen = g.input(ATTN_INPUTS.gqa.totalLen, DT.int32, []);
    return { kind, seqlensK, totalLen, cosCache, sinCache };
  }
  const pos = g.input(ATTN_INPUTS.plain.positionIds, DT.int32, ['batch', 'seq']);
  const mask = g.input(ATTN_INPUTS.plain.mask, DT.float, ['batch', 1, 1, 'seq', 'total']);
  const axis2 = g.i64([2]);
  const full = (table: string): string => {
    const half = g.op('Gather', [table, pos], { axis: 0 }); // [B, S, D/2]
    const both = g.op('Concat', [half, half], { axis: -1 }); // [B, S, D]
    return g.op('Unsqueeze', [both, axis2]); // [B, S, 1, D]
  };
  return { kind, cosCache, sinCache, cosFull: full(cosCache), sinFull: full(sinCache), mask };
}

export interface AttentionIo {
  readonly pastKey: string;
  readonly pastValue: string;
  /** gqa/plain: the whole cache after the step; fused: only the step's own K/V [B, S, Hkv, D]. */
  readonly presentKey: string;
  readonly presentValue: string;
}

/**
 * Self-attention for one layer. q [B,S,Hq*D], k/v [B,S,Hkv*D] (already projected, biased and
 * q/k-normed when the family wants it), or them packed as one `qkv`; returns the context
 * [B, S, Hq*D] before o_proj.
 */
export function attention(
  g: GraphBuilder,
  cfg: ModelConfig,
  ctx: AttentionContext,
  io: AttentionIo,
  input: { readonly qkv: string } | { readonly q: string; readonly k: string; readonly v: string },
): string {
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = cfg;
  if (ctx.kind === 'gqa') {
    // Packed form: query [B, S, (Hq + 2 Hkv) D] with key/value omitted.
    const qkv = 'qkv' in input ? [input.qkv, '', ''] : [input.q, input.k, input.v];
    const [out] = g.node(
      'GroupQueryAttention',
      [...qkv, io.pastKey, io.pastValue, ctx.seqlensK ?? '', ctx.totalLen ?? '', ctx.cosCache, ctx.sinCache],
      [g.name('attn'), io.presentKey, io.presentValue],
      { num_heads: hq, kv_num_heads: hkv, do_rotary: 1, rotary_interleaved: 0, scale: { float: 1 / Math.sqrt(d) } },
      MS_DOMAIN,
    );
    return out as string;
  }
  if (ctx.kind === 'fused') {
    const [qk, v] = 'qkv' in input ? (g.node('Split', [input.qkv, g.i64([(hq + hkv) * d, hkv * d])], 2, { axis: -1 }) as [string, string]) : [g.op('Concat', [input.q, input.k], { axis: -1 }), input.v];
    return fusedCore(g, cfg, ctx, io, qk, v);
  }
  const [q, k, v] = 'qkv' in input ? (g.node('Split', [input.qkv, g.i64([hq * d, hkv * d, hkv * d])], 3, { axis: -1 }) as [string, string, string]) : [input.q, input.k, input.v];
  const q4 = g.op('Reshape', [q, g.i64([0, 0, hq, d])]);
  const k4 = g.op('Reshape', [k, g.i64([0, 0, hkv, d])]);
  const v4 = g.op('Reshape', [v, g.i64([0, 0, hkv, d])]);
  return plainCore(g, cfg, ctx, io, q4, k4, v4);
}

/** The plain path after projection: q4 [B,S,Hq,D], k4/v4 [B,S,Hkv,D]. */
export function plainCore(g: GraphBuilder, cfg: ModelConfig, ctx: AttentionContext, io: AttentionIo, q4: string, k4: string, v4: string): string {
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = cfg;
  const groups = hq / hkv;
  const halves = g.i64([d / 2, d / 2]);
  // rotate_half(x) = concat(-x2, x1); x' = x*cos + rotate_half(x)*sin (transformers' apply_rotary_pos_emb)
  const rope = (x: string): string => {
    const [x1, x2] = g.node('Split', [x, halves], 2, { axis: -1 }) as [string, string];
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 });
    return g.op('Add', [g.op('Mul', [x, ctx.cosFull ?? '']), g.op('Mul', [rot, ctx.sinFull ?? ''])]);
  };
  const perm = { perm: [0, 2, 1, 3] };
  // Scale q before the product: one multiply over [S, D] instead of over [S, T].
  const qs = g.op('Mul', [rope(q4), g.f32(1 / Math.sqrt(d))]);
  const qT = g.op('Reshape', [g.op('Transpose', [qs], perm), g.i64([0, hkv, groups, -1, d])]); // [B,Hkv,G,S,D]
  const kNew = g.op('Transpose', [rope(k4)], perm); // [B,Hkv,S,D]
  const vNew = g.op('Transpose', [v4], perm);
  g.node('Concat', [io.pastKey, kNew], [io.presentKey], { axis: 2 });
  g.node('Concat', [io.pastValue, vNew], [io.presentValue], { axis: 2 });
  const axis2 = g.i64([2]);
  const k5 = g.op('Transpose', [g.op('Unsqueeze', [io.presentKey, axis2])], { perm: [0, 1, 2, 4, 3] }); // [B,Hkv,1,D,T]
  const v5 = g.op('Unsqueeze', [io.presentValue, axis2]); // [B,Hkv,1,T,D]
  const scores = g.op('Add', [g.op('MatMul', [qT, k5]), ctx.mask ?? '']); // [B,Hkv,G,S,T]
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const ctx5 = g.op('MatMul', [probs, v5]); // [B,Hkv,G,S,D]
  const ctx4 = g.op('Transpose', [g.op('Reshape', [ctx5, g.i64([0, hq, -1, d])])], perm); // [B,S,Hq,D]
  return g.op('Reshape', [ctx4, g.i64([0, 0, hq * d])]);
}

/**
 * The fused path after projection: qk [B,S,(Hq+Hkv)*D] (q and k side by side, one rotary node for
 * both), v [B,S,Hkv*D]; returns [B,S,Hq*D]. Every node runs on every decode step of every layer,
 * so the count is kept low: shape plumbing that depends only on the step is shared across layers.
 */
/** fused: past and causal masks side by side, [B, 1, G*S, P+S], built where it is used (the verify branch). */
function fullMask(g: GraphBuilder, ctx: AttentionContext): string {
  const pastMask = ctx.pastMask ?? '';
  const causal = ctx.causal ?? '';
  const shape = (t: string, i: number): string => g.op('Slice', [g.op('Shape', [t]), g.i64([i]), g.i64([i + 1])]);
  return g.op('Concat', [
    g.op('Expand', [pastMask, g.op('Concat', [g.i64([1, 1]), shape(causal, 0), g.i64([1])], { axis: 0 })]), // [B,1,G*S,P]
    g.op('Expand', [causal, g.op('Concat', [shape(pastMask, 0), g.i64([1, 1, 1])], { axis: 0 })]), // [B,1,G*S,S]
  ], { axis: -1 });
}

/**
 * Past keys a prefill chunk scores per block of its online softmax: [G*S, KEY_BLOCK] scores (896 x
 * 1024 fp32 = 3.7 MB for a 128-position chunk of a 14/2-head model) instead of [G*S, P+S] (30 MB at
 * 8k, 118 MB at 32k, and each of scores, mask, sum and softmax as large).
 */
export const KEY_BLOCK = 1024;

/**
 * The running state of an online softmax (Milakov & Gimelshein 2018, "Online normalizer
 * calculation for softmax"; FlashAttention's forward pass): max m, sum l of exp(s - m) and the
 * sum acc of exp(s - m)·V over the blocks seen so far, rows [B, Hkv, G*S]. A block of scores s
 * [.., G*S, n] and its values (a function of the block's probabilities) fold in as
 * m' = max(m, max s), l' = l·e^(m-m') + Σ e^(s-m'), acc' = acc·e^(m-m') + e^(s-m')·V. m starts
 * at -1e30, not -inf, so a block whose row is all masked (-inf) leaves the state as it was
 * instead of making NaN of -inf - -inf.
 */
function foldBlock(g: GraphBuilder, m: string, l: string, acc: string, s: string, times: (p: string) => string): [string, string, string] {
  const last = g.i64([-1]);
  const m2 = g.op('Max', [m, g.op('ReduceMax', [s, last], { keepdims: 1 })]);
  const p = g.op('Exp', [g.op('Sub', [s, m2])]);
  const c = g.op('Exp', [g.op('Sub', [m, m2])]);
  const l2 = g.op('Add', [g.op('Mul', [l, c]), g.op('ReduceSum', [p, last], { keepdims: 1 })]);
  const acc2 = g.op('Add', [g.op('Mul', [acc, c]), times(p)]);
  return [m2, l2, acc2];
}

function fusedCore(g: GraphBuilder, cfg: ModelConfig, ctx: AttentionContext, io: AttentionIo, qk: string, v: string): string {
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = cfg;
  const groups = hq / hkv;
  const rotated = g.op('RotaryEmbedding', [qk, ctx.positionIds ?? '', ctx.cosCache, ctx.sinCache], { interleaved: 0, num_heads: hq + hkv }, MS_DOMAIN);
  const [q, k] = g.node('Split', [rotated, g.i64([hq * d, hkv * d])], 2, { axis: -1 }) as [string, string];
  const kvType = ctx.kvType ?? DT.float;
  const fp32 = kvType === DT.float;
  const kvShape = g.i64([0, 0, hkv, d]);
  // [B,S,Hkv,D]; with an fp32 cache these reshapes are the step's new_key/new_value outputs.
  const [k4] = g.node('Reshape', [k, kvShape], fp32 ? [io.presentKey] : 1) as [string];
  const [v4] = g.node('Reshape', [v, kvShape], fp32 ? [io.presentValue] : 1) as [string];
  if (!fp32) {
    g.node('Cast', [k4], [io.presentKey], { to: kvType });
    g.node('Cast', [v4], [io.presentValue], { to: kvType });
  }
  const fromKv = (x: string): string => (kvType === DT.float ? x : g.op('Cast', [x], { to: DT.float }));
  // Query head i uses KV head floor(i / groups): the rows of one KV head's product are (g, s) pairs.
  const q5 = g.op('Reshape', [q, g.i64([0, 0, hkv, groups, d])]); // [B,S,Hkv,G,D]
  const q4 = g.op('Reshape', [g.op('Transpose', [q5], { perm: [0, 2, 3, 1, 4] }), g.i64([0, hkv, -1, d])]); // [B,Hkv,G*S,D]
  const alpha = { float: 1 / Math.sqrt(d) };
  const ctxShape = ['batch', hkv, 'rows', d] as const;
  // A prefill chunk never materializes its [G*S, P+S] scores: a Loop runs an online softmax over
  // the past in blocks of KEY_BLOCK positions, read in place ([P, B, Hkv, D] as decode reads it),
  // and the chunk's own positions fold in last with the causal mask, as decode scores its own
  // position apart. Transient memory is a block's scores whatever the context, so a 128-position
  // chunk runs as one step at any length (its projections at M = 128, not in parts of a few rows).
  // Not bit-exact with decode (neither was the one-softmax form): the verify branch is.
  const prefill = g.subgraph('prefill', () => {
    const pastK = fromKv(io.pastKey);
    const pastV = fromKv(io.pastValue);
    const dims = g.op('Shape', [q4]); // [B, Hkv, G*S, D]
    const rowShape = g.op('Concat', [g.op('Slice', [dims, g.i64([0]), g.i64([3])]), g.i64([1])], { axis: 0 });
    const mInit = g.op('Expand', [g.f32(-1e30), rowShape]);
    const lInit = g.op('Expand', [g.f32(0), rowShape]);
    const accInit = g.op('Expand', [g.f32(0), dims]);
    const pLen = g.op('Slice', [g.op('Shape', [pastK]), g.i64([0]), g.i64([1])]);
    const trips = g.op('Squeeze', [g.op('Div', [g.op('Add', [pLen, g.i64([KEY_BLOCK - 1])]), g.i64([KEY_BLOCK])]), g.i64([0])]);
    const [it, cond, m, l, acc] = ['it', 'cond', 'm', 'l', 'acc'].map((n) => g.name(`blk_${n}`)) as [string, string, string, string, string];
    const rowDims = ['batch', hkv, 'rows', 1] as const;
    const body = g.subgraph(
      'key_block',
      () => {
        const from = g.op('Mul', [g.op('Unsqueeze', [it, g.i64([0])]), g.i64([KEY_BLOCK])]); // [1]
        const to = g.op('Add', [from, g.i64([KEY_BLOCK])]);
        const axis0 = g.i64([0]);
        const kb = g.op('Slice', [pastK, from, to, axis0]); // [n, B, Hkv, D]
        const vb = g.op('Slice', [pastV, from, to, axis0]);
        const mask = g.op('Slice', [ctx.pastMask ?? '', from, to, g.i64([3])]); // [B, 1, 1, n]
        const sb = g.op('Add', [g.op('FusedMatMul', [q4, kb], { transB: 1, transBatchB: 1, alpha }, MS_DOMAIN), mask]); // [B,Hkv,G*S,n]
        const [m2, l2, acc2] = foldBlock(g, m, l, acc, sb, (p) => g.op('FusedMatMul', [p, vb], { transBatchB: 1 }, MS_DOMAIN));
        return [[g.op('Identity', [cond]), DT.bool, []], [m2, DT.float, rowDims], [l2, DT.float, rowDims], [acc2, DT.float, ctxShape]];
      },
      [[it, DT.int64, []], [cond, DT.bool, []], [m, DT.float, rowDims], [l, DT.float, rowDims], [acc, DT.float, ctxShape]],
    );
    const [mP, lP, accP] = g.node('Loop', [trips, '', mInit, lInit, accInit], 3, { body: { graph: body } }) as [string, string, string];
    const kT = g.op('Transpose', [k4], { perm: [0, 2, 3, 1] }); // [B,Hkv,D,S]
    const sNew = g.op('Add', [g.op('FusedMatMul', [q4, kT], { alpha }, MS_DOMAIN), ctx.causal ?? '']); // [B,Hkv,G*S,S]
    const vNew = g.op('Transpose', [v4], { perm: [0, 2, 1, 3] }); // [B,Hkv,S,D]
    const [, lAll, accAll] = foldBlock(g, mP, lP, accP, sNew, (p) => g.op('MatMul', [p, vNew]));
    return [[g.op('Div', [accAll, lAll]), DT.float, ctxShape]];
  });
  const decode = g.subgraph('decode', () => {
    // Past: FusedMatMul reads [P, B, Hkv, D] as [B, Hkv, P, D] (transBatchB) and its transpose (transB).
    const sPast = g.op('Add', [g.op('FusedMatMul', [q4, fromKv(io.pastKey)], { transB: 1, transBatchB: 1, alpha }, MS_DOMAIN), ctx.pastMask ?? '']); // [B,Hkv,G*S,P]
    // The step's own positions, causal among themselves (the mask input is [G*S, S]).
    const kT = g.op('Transpose', [k4], { perm: [0, 2, 3, 1] }); // [B,Hkv,D,S]
    const sNew = g.op('Add', [g.op('FusedMatMul', [q4, kT], { alpha }, MS_DOMAIN), ctx.causal ?? '']); // [B,Hkv,G*S,S]
    // Own score FIRST: a batch's shorter rows then end in their -inf padding instead of carrying it
    // between past and own, and onnxruntime's Softmax and the products below give a row the same
    // bits whatever -inf / zero tail follows it (measured), so a sequence decodes bit for bit the
    // same alone or in a batch of any lengths (fp32), and exact chunks (below) match it.
    const probs = g.op('Softmax', [g.op('Concat', [sNew, sPast], { axis: -1 })], { axis: -1 });
    const pNew = g.op('Slice', [probs, g.i64([0]), g.i64([1]), g.i64([-1])]);
    const pPast = g.op('Slice', [probs, g.i64([1]), g.i64([Number.MAX_SAFE_INTEGER]), g.i64([-1])]);
    const cPast = g.op('FusedMatMul', [pPast, fromKv(io.pastValue)], { transBatchB: 1 }, MS_DOMAIN); // [B,Hkv,G*S,D]
    const cNew = g.op('MatMul', [pNew, g.op('Transpose', [v4], { perm: [0, 2, 1, 3] })]);
    return [[g.op('Add', [cPast, cNew]), DT.float, ctxShape]];
  });
  // A chunk whose positions must come out exactly as one-token decode steps would give them (the
  // tokens a speculative step verifies, generated tokens replayed after a worker loss): each position
  // runs the decode step's own products — M = G rows per product, its own score and its own value
  // apart, the rest over the keys before it — so every float is rounded as decode rounds it. Measured
  // on onnxruntime's CPU kernels (lab, 200 random cases each): Softmax ignores a tail of -inf and a
  // product over more keys whose extra probabilities are 0 gives the same sums, but only while a
  // product has the same row count (M = 1 and M = 2 take other kernels than M = G*S); a prefill chunk's
  // single G*S-row product and combined softmax differ from decode by ~1e-5 in the logits. It copies
  // the past (like prefill) and runs S small products per KV head, so it is for short chunks.
  const verify = g.subgraph('verify', () => {
    const q5s = g.op('Transpose', [q5], { perm: [0, 2, 1, 3, 4] }); // [B,Hkv,S,G,D]
    const toPositions = (x: string): string => g.op('Transpose', [x], { perm: [1, 0, 2, 3] }); // [S,B,Hkv,D]
    const heads = (x: string): string => g.op('Unsqueeze', [g.op('Transpose', [x], { perm: [1, 2, 0, 3] }), g.i64([2])]); // [B,Hkv,1,T,D]
    const kAll = heads(g.op('Concat', [fromKv(io.pastKey), toPositions(k4)], { axis: 0 }));
    const vAll = heads(g.op('Concat', [fromKv(io.pastValue), toPositions(v4)], { axis: 0 }));
    const scores = g.op('FusedMatMul', [q5s, kAll], { transB: 1, alpha }, MS_DOMAIN); // [B,Hkv,S,G,T]
    const own = (x: string, axis: number): string => g.op('Unsqueeze', [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), g.i64([axis])]);
    const sOwn = g.op('FusedMatMul', [q5s, own(k4, 4)], { alpha }, MS_DOMAIN); // [B,Hkv,S,G,1], as decode's sNew
    // Column P+s of row s is that position's own key: [S,1,T] masks.
    const sizes = ctx.splitSizes ?? '';
    const pLen = g.op('Slice', [sizes, g.i64([0]), g.i64([1])]);
    const sLen = g.op('Slice', [sizes, g.i64([1]), g.i64([2])]);
    const scalar = (x: string): string => g.op('Squeeze', [x, g.i64([0])]);
    const zero = g.i64([0]);
    const one = g.i64([1]);
    const cols = g.op('Range', [scalar(zero), scalar(g.op('Add', [pLen, sLen])), scalar(one)]); // [T]
    const diag = g.op('Unsqueeze', [g.op('Add', [g.op('Range', [scalar(zero), scalar(sLen), scalar(one)]), pLen]), g.i64([1, 2])]); // [S,1,1]
    const isOwn = g.op('Equal', [cols, diag]); // [S,1,T]
    // Past mask and causal mask as the prefill branch uses them, rows reordered to (s, g).
    const mask = g.op('Transpose', [g.op('Reshape', [fullMask(g, ctx), g.op('Concat', [g.i64([0, 1, groups, -1]), g.op('Add', [pLen, sLen])], { axis: 0 })])], { perm: [0, 1, 3, 2, 4] });
    // As decode: [own score, scores of every earlier position, -inf for own column and later].
    const rest = g.op('Add', [g.op('Where', [isOwn, g.f32(-Infinity), scores]), mask]);
    const probs = g.op('Softmax', [g.op('Concat', [sOwn, rest], { axis: -1 })], { axis: -1 }); // [B,Hkv,S,G,1+T]
    const pOwn = g.op('Slice', [probs, g.i64([0]), g.i64([1]), g.i64([-1])]); // [B,Hkv,S,G,1]
    const pRest = g.op('Slice', [probs, g.i64([1]), g.i64([Number.MAX_SAFE_INTEGER]), g.i64([-1])]);
    const cPast = g.op('MatMul', [pRest, vAll]); // [B,Hkv,S,G,D]
    const cNew = g.op('MatMul', [pOwn, own(v4, 3)]); // [B,Hkv,S,1,D] → [B,Hkv,S,G,D]
    const out = g.op('Reshape', [g.op('Transpose', [g.op('Add', [cPast, cNew])], { perm: [0, 1, 3, 2, 4] }), g.i64([0, hkv, -1, d])]);
    return [[out, DT.float, ctxShape]];
  });
  const chunk = g.subgraph('chunk', () => [[g.op('If', [ctx.exact ?? ''], { then_branch: { graph: verify }, else_branch: { graph: prefill } }), DT.float, ctxShape]]);
  const ctx4 = g.op('If', [ctx.multi ?? ''], { then_branch: { graph: chunk }, else_branch: { graph: decode } });
  const c5 = g.op('Reshape', [ctx4, g.i64([0, hkv, groups, -1, d])]); // [B,Hkv,G,S,D]
  return g.op('Reshape', [g.op('Transpose', [c5], { perm: [0, 3, 1, 2, 4] }), g.i64([0, 0, hq * d])]);
}
