// Projections over weights carried in a file's own quantized format (issue 24; the layout and why
// offsets are a product of their own: src/model/carried-blocks.ts). The int4 graph (3-D
// activations) calls these in place of requantizing when its checkpoint carries blocks.

import type { Checkpoint } from '../types.ts';
import { OFFSET_GROUP, type CarriedBlocks, type CarriedMatrix } from '../carried-blocks.ts';
import { DT, type GraphBuilder } from './graph.ts';
import type { WeightReader } from './weights.ts';

/** MatMulNBits of x ([B, S, K]) with `lead` = [B, S] (build-shard.ts nbits). */
export type NBits = (x: string, rest: readonly string[], attrs: { K: number; N: number }, lead: string, bits: 4 | 8, block: number) => string;

export interface CarryContext {
  readonly g: GraphBuilder;
  readonly w: WeightReader;
  readonly ckpt: Checkpoint & CarriedBlocks;
  readonly nbits: NBits;
}

/** Σ of each 32-value group of x's last axis: [B, S, K / 32], once per x. */
const groupSums = new WeakMap<GraphBuilder, Map<string, string>>();
function sumsOf(g: GraphBuilder, x: string, k: number): string {
  let m = groupSums.get(g);
  if (m === undefined) groupSums.set(g, (m = new Map()));
  let s = m.get(x);
  if (s === undefined) {
    s = g.op('ReduceSum', [g.op('Reshape', [x, g.i64([0, 0, k / OFFSET_GROUP, OFFSET_GROUP])]), g.i64([-1])], { keepdims: 0 });
    m.set(x, s);
  }
  return s;
}

/** [r, c] row-major → [c, r]. */
function transpose(src: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j] as number;
  return out;
}

/**
 * x [B, S, K] times rows [r0, r1) of weight `name` ([N, K], HF layout) in its carried format, plus
 * `bias` (an fp32 [N] initializer name) if given. A tensor the file holds as F32/F16/BF16 runs as
 * an fp32 MatMul over its values (exact, as `--quant none` runs it).
 */
export function carriedProduct(c: CarryContext, x: string, lead: string, name: string, tag: string, range?: readonly [number, number], bias?: string): string {
  const { g, w, ckpt } = c;
  const m = ckpt.carried(name, range);
  if (m === null) {
    const info = ckpt.info(name);
    const [r0, r1] = range ?? [0, info.shape[0] ?? 1];
    const k = info.shape[1] ?? 1;
    const wt = g.init(`${tag}.weight_t`, DT.float, [k, r1 - r0], transpose(w.rows(info, r0, r1), r1 - r0, k));
    const y = g.op('MatMul', [x, wt]);
    return bias === undefined ? y : g.op('Add', [y, bias]);
  }
  return blocksProduct(c, x, lead, m, tag, bias);
}

/**
 * Several weights ([n_i, K] each) of one carried format as one product (output [..., Σ n_i]), as
 * the int4 build fuses q|k|v and gate|up: fewer nodes a step (each costs executor time on small
 * models). Null when their formats differ (a Q4_K_M file's attn_v is Q6_K on some layers) or one
 * is built as fp32.
 */
export function carriedFused(c: CarryContext, x: string, lead: string, names: readonly string[], tag: string, bias?: () => string): string | null {
  const f = names.map((n) => c.ckpt.carriedFormat(n));
  const f0 = f[0];
  if (f0 === null || f0 === undefined || f.some((v) => v === null || v.bits !== f0.bits || v.block !== f0.block || v.offsets !== f0.offsets)) return null;
  const ms = names.map((n) => c.ckpt.carried(n) as CarriedMatrix);
  const cat = <T extends Uint8Array | Float32Array>(parts: T[], make: (len: number) => T): T => {
    const out = make(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p as never, o);
      o += p.length;
    }
    return out;
  };
  const m0 = ms[0] as CarriedMatrix;
  const m: CarriedMatrix = {
    ...m0,
    rows: ms.reduce((a, v) => a + v.rows, 0),
    packed: cat(ms.map((v) => v.packed), (n) => new Uint8Array(n)),
    scales: cat(ms.map((v) => v.scales), (n) => new Float32Array(n)),
    offsetValues: m0.offsetValues === null ? null : cat(ms.map((v) => v.offsetValues as Float32Array), (n) => new Float32Array(n)),
  };
  return blocksProduct(c, x, lead, m, tag, bias?.());
}

function blocksProduct(c: CarryContext, x: string, lead: string, m: CarriedMatrix, tag: string, bias?: string): string {
  const { g } = c;
  const b = g.init(`${tag}.qweight`, DT.uint8, [m.rows, m.blocks, (m.block * m.bits) / 8], m.packed);
  const s = g.init(`${tag}.scales`, DT.float, [m.rows * m.blocks], m.scales);
  const rest = [b, s];
  if (bias !== undefined) rest.push('', '', bias);
  let y = c.nbits(x, rest, { K: m.cols, N: m.rows }, lead, m.bits, m.block);
  if (m.offsetValues !== null) {
    const groups = m.cols / OFFSET_GROUP;
    const off = g.init(`${tag}.offsets_t`, DT.float, [groups, m.rows], transpose(m.offsetValues, m.rows, groups));
    y = g.op('Add', [y, g.op('MatMul', [sumsOf(g, x, m.cols), off])]);
  }
  return y;
}
