// Weight preparation for the shard graph: HF Linear weights [out, in] become either fp32 MatMul
// operands [in, out] or int4 MatMulNBits operands, fused where several projections read the same
// input (q|k|v, gate|up) so decode runs one big matmul instead of three small ones.

import fs from 'node:fs';
import type { Checkpoint, TensorInfo } from '../types.ts';
import { allocInt4, quantizeRowsInt4, type Int4Matrix } from '../quant-int4.ts';

/** fp32 [K, N] from several HF weights [n_i, K] stacked along N (transposed once, here). */
export function fusedTransposed(ckpt: Checkpoint, names: readonly string[]): { data: Float32Array; k: number; n: number } {
  const infos = names.map((n) => ckpt.info(n));
  const k = infos[0]?.shape[1] ?? 0;
  const n = infos.reduce((s, i) => s + (i.shape[0] ?? 0), 0);
  const out = new Float32Array(k * n);
  let col = 0;
  for (const name of names) {
    const w = ckpt.read(name);
    const rows = w.length / k;
    for (let r = 0; r < rows; r++) {
      const src = r * k;
      for (let c = 0; c < k; c++) out[c * n + col + r] = w[src + c] as number;
    }
    col += rows;
  }
  return { data: out, k, n };
}

/** Concatenation of 1-D tensors (fused biases). */
export function concatVectors(ckpt: Checkpoint, names: readonly string[]): Float32Array {
  const parts = names.map((n) => ckpt.read(n));
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const ROW_CHUNK_BYTES = 8 << 20;

/**
 * Rows [r0, r1) of a 2-D tensor as fp32, read straight from its safetensors file. Used for the
 * embedding table under int4, so its fp32 copy (545 MB for a 0.5B vocabulary) never exists whole.
 */
export function readRows(info: TensorInfo, r0: number, r1: number): Float32Array {
  const cols = info.shape[1] ?? 1;
  const elt = info.dtype === 'F32' ? 4 : 2;
  const start = info.byteStart + r0 * cols * elt;
  const len = (r1 - r0) * cols * elt;
  const buf = new Uint8Array(len);
  const fd = fs.openSync(info.file, 'r');
  try {
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, start + got);
      if (n <= 0) throw new Error(`${info.file}: short read of ${info.name}`);
      got += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  const count = (r1 - r0) * cols;
  // safetensors is little-endian, like every machine onnxruntime-node ships for.
  if (info.dtype === 'F32') return new Float32Array(buf.buffer, 0, count);
  const u16 = new Uint16Array(buf.buffer, 0, count);
  const out = new Float32Array(count);
  if (info.dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u32[i] = (u16[i] as number) << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(u16[i] as number);
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * int4 [sum n_i, K] from several HF weights stacked along rows. Tensors above a few MB are read
 * in row chunks so the fp32 form of a big table never sits in memory whole.
 */
export function fusedInt4(ckpt: Checkpoint, names: readonly string[]): Int4Matrix {
  const infos = names.map((n) => ckpt.info(n));
  const k = infos[0]?.shape[1] ?? 0;
  const rows = infos.reduce((s, i) => s + (i.shape[0] ?? 0), 0);
  const m = allocInt4(rows, k);
  let row = 0;
  for (const info of infos) {
    const n = info.shape[0] ?? 0;
    if (n * k * 4 <= ROW_CHUNK_BYTES * 4) {
      quantizeRowsInt4(ckpt.read(info.name), n, m, row);
    } else {
      const step = Math.max(1, Math.floor(ROW_CHUNK_BYTES / (k * 4)));
      for (let r = 0; r < n; r += step) {
        const r1 = Math.min(n, r + step);
        quantizeRowsInt4(readRows(info, r, r1), r1 - r, m, row + r);
      }
    }
    row += n;
  }
  return m;
}
