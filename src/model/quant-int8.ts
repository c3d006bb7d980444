// Symmetric int8 block quantization in the layout of onnxruntime's MatMulNBits with bits = 8 and of
// GatherBlockQuantized with bits = 8 (com.microsoft): for W [N, K], each row is cut into blocks of
// `block` values along K (the last zero-padded), B is uint8 [N, ceil(K/block), block] (one value a
// byte), scales are fp32 [N * ceil(K/block)], and the zero point is the default 128. As for int4
// (quant-int4.ts), the value of largest magnitude maps to -128 exactly. What llama.cpp's Q8_0 is
// for the token embedding of a Q4_0 file: the tensors whose rounding the output feels most
// (issue 25: the tied embedding/head at int4 doubled the KL divergence against fp32).

import { extremeOf, INT4_BLOCK, int4Blocks, type Int4Matrix } from './quant-int4.ts';

/** Same shape of record as Int4Matrix, with `packed` holding one byte a value ([rows, blocks, block]). */
export type Int8Matrix = Int4Matrix;

export function allocInt8(rows: number, cols: number, block: number = INT4_BLOCK): Int8Matrix {
  const blocks = int4Blocks(cols, block);
  return { rows, cols, blocks, block, packed: new Uint8Array(rows * blocks * block), scales: new Float32Array(rows * blocks) };
}

/** Quantizes `src` ([n, cols] fp32) into rows [rowOffset, rowOffset + n) of `dst` (Math.round: half up). */
export function quantizeRowsInt8(src: Float32Array, n: number, dst: Int8Matrix, rowOffset: number): void {
  const { cols, blocks, packed, scales } = dst;
  const block = dst.block ?? INT4_BLOCK;
  if (src.length < n * cols) throw new RangeError(`quantizeRowsInt8: need ${n * cols} values, got ${src.length}`);
  for (let r = 0; r < n; r++) {
    const row = r * cols;
    const outRow = rowOffset + r;
    for (let b = 0; b < blocks; b++) {
      const k0 = row + b * block;
      const k1 = Math.min(row + cols, k0 + block);
      const scale = extremeOf(src, k0, k1) / -128;
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[outRow * blocks + b] = scale;
      const base = (outRow * blocks + b) * block;
      for (let j = 0; j < block; j++) {
        const k = k0 + j;
        if (k >= k1) {
          packed[base + j] = 128;
          continue;
        }
        const q = Math.round((src[k] as number) * inv) + 128;
        packed[base + j] = q < 0 ? 0 : q > 255 ? 255 : q;
      }
    }
  }
}

/** Back to fp32 [rows, cols]. */
export function dequantizeInt8(m: Int8Matrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const block = m.block ?? INT4_BLOCK;
  for (let r = 0; r < m.rows; r++) {
    for (let k = 0; k < m.cols; k++) {
      const b = Math.floor(k / block);
      out[r * m.cols + k] = ((m.packed[(r * m.blocks + b) * block + (k % block)] as number) - 128) * (m.scales[r * m.blocks + b] as number);
    }
  }
  return out;
}

/** Bytes of a bits = 8 MatMulNBits weight [rows, cols] as built: one byte a value + one fp32 scale per block. */
export function int8MatrixBytes(rows: number, cols: number, block: number): number {
  return rows * int4Blocks(cols, block) * (block + 4);
}

/**
 * Bits of the vocabulary matrices (embedding table, lm_head) of int4 models when the caller names
 * none: HEARTH_VOCAB_BITS (4 or 8), else 4. At 8 bits (with HEARTH_INT4_BLOCK=32) hearth's KL
 * divergence from fp32 is at or below Q4_0's on the real models (docs/performance.md "Quality"),
 * but a split tied model holds its head twice and decodes slower, so it is the operator's choice
 * (see runtime/shard-session.ts defaultInt4Block). Here, beside the quantizer, so that the planner
 * (which must not load onnxruntime) counts the bytes the engine builds.
 */
export function defaultVocabBits(): 4 | 8 {
  return process.env['HEARTH_VOCAB_BITS'] === '8' ? 8 : 4;
}

/** Bits an int4 model's projection with K inputs is built at: 8 when 32 does not divide K (see
 *  build-shard.ts fusedInt4), else 4. The planner counts the same (cluster/model-costs.ts). */
export function raggedBits(k: number): 4 | 8 {
  return k % 32 === 0 ? 4 : 8;
}
