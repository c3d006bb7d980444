// The two attention implementations a shard graph can use.
//
// gqa:   onnxruntime's GroupQueryAttention (com.microsoft) with do_rotary. Ragged batches are native:
//        past is [B, Hkv, P, D] right-padded, seqlens_k[b] = total_b - 1, and present row b holds
//        its valid positions at [0, total_b). Needs headDim % 16 == 0 for its rotary kernel.
// plain: standard ONNX ops (MatMul/Softmax, rotate_half with gathered cos/sin, an additive mask),
//        exact for any head size. present = Concat(past, new) so row b's new positions sit at
//        [P, P+S) after its own past [0, L_b); the mask hides the padding in between.

import type { ModelConfig } from '../types.ts';
import { DT, MS_DOMAIN, type GraphBuilder } from './graph.ts';

export const ATTENTION_KINDS = ['gqa', 'plain'] as const;
export type AttentionKind = (typeof ATTENTION_KINDS)[number];

/** Graph inputs shared by every layer of one attention kind. */
export interface AttentionContext {
  readonly kind: AttentionKind;
  /** gqa: seqlens_k int32 [B], total_seq_len int32 scalar, cos/sin caches. */
  readonly seqlensK?: string;
  readonly totalLen?: string;
  readonly cosCache: string;
  readonly sinCache: string;
  /** plain: cos/sin gathered for the step's positions, [B, S, 1, D]; mask [B, 1, 1, S, T]. */
  readonly cosFull?: string;
  readonly sinFull?: string;
  readonly mask?: string;
}

/** Graph input names per kind (besides ids/hidden and the KV tensors). */
export const ATTN_INPUTS = {
  gqa: { seqlensK: 'seqlens_k', totalLen: 'total_seq_len' },
  plain: { positionIds: 'position_ids', mask: 'attn_mask' },
} as const;

export function attentionContext(g: GraphBuilder, cfg: ModelConfig, kind: AttentionKind, cos: Float32Array, sin: Float32Array, positions: number): AttentionContext {
  const half = cfg.headDim / 2;
  const cosCache = g.init('rope_cos', DT.float, [positions, half], cos);
  const sinCache = g.init('rope_sin', DT.float, [positions, half], sin);
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
