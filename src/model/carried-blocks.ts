// Quantized weights carried into the graph as a file holds them (issue 24: a GGUF's Q4_0, Q8_0 and
// K-quant blocks), rather than re-derived from fp32. A checkpoint that can hand its blocks over
// implements CarriedBlocks; the int4 graph builder then builds each projection in the file's own
// format (src/model/onnx/carried-graph.ts) and the planner counts those bytes (carriedMatrixBytes).
//
// The layout is MatMulNBits' (quant-int4.ts / quant-int8.ts): B [rows, blocks, block·bits/8],
// fp32 scales [rows·blocks], default zero point (8 at 4 bits, 128 at 8). Formats with a per-block
// minimum (K-quants' d·sc·q − dmin·m, Q4_1/Q5_1's d·q + m) carry it as `offsets`: one fp32 per
// 32-value group, added to every value of the group. onnxruntime 1.30's CPU MatMulNBits takes fp32
// zero points only on its unpacked path (~150x slower on a 0.5B-shaped projection) and not at
// 8 bits at all; uint4 zero points are exact only for integer offsets. So the offsets run as a
// separate small product: Σ_g offset_g·(Σ_{k∈g} x_k), 1/32 of the multiply-adds, in fp32.

import type { Checkpoint } from './types.ts';

/** Values per offset group (every ggml type with a minimum has 32-value (sub-)blocks). */
export const OFFSET_GROUP = 32;

export interface CarriedFormat {
  readonly bits: 4 | 8;
  /** MatMulNBits block_size: 32, or 16 for Q6_K's 16-value sub-blocks. */
  readonly block: number;
  /** Whether values carry a per-32-value offset (see above). */
  readonly offsets: boolean;
}

export interface CarriedMatrix extends CarriedFormat {
  readonly rows: number;
  readonly cols: number;
  /** ceil(cols / block). */
  readonly blocks: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  /** [rows, cols / OFFSET_GROUP] when `offsets`, else null. */
  readonly offsetValues: Float32Array | null;
}

export interface CarriedBlocks {
  /** Whether this checkpoint builds from its blocks at all (a GGUF unless HEARTH_GGUF_REQUANTIZE=1). */
  carrying(): boolean;
  /** How `name` is carried, or null when it is built as fp32 (F32/F16/BF16 in the file, or carrying is off). */
  carriedFormat(name: string): CarriedFormat | null;
  /** Rows [r0, r1) of `name` (default all) in its carried format, or null as for carriedFormat. */
  carried(name: string, range?: readonly [number, number]): CarriedMatrix | null;
}

export function carriesBlocks(ckpt: Checkpoint): ckpt is Checkpoint & CarriedBlocks {
  const c = ckpt as Partial<CarriedBlocks>;
  return typeof c.carried === 'function' && typeof c.carriedFormat === 'function' && typeof c.carrying === 'function' && c.carrying();
}

/** Bytes of a [rows, cols] weight as built in `f` (packed values, fp32 scales, fp32 offsets), or
 *  as an fp32 matrix when f is null. */
export function carriedMatrixBytes(rows: number, cols: number, f: CarriedFormat | null): number {
  if (f === null) return rows * cols * 4;
  const blocks = Math.ceil(cols / f.block);
  return rows * blocks * ((f.block * f.bits) / 8 + 4) + (f.offsets ? rows * Math.ceil(cols / OFFSET_GROUP) * 4 : 0);
}
