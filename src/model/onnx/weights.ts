// Reading weights for the shard graph without touching more memory than one tensor's worth.
//
// Every buffer here is a reusable scratch (valid until the next call that uses the same pool):
// the graph builder writes each prepared tensor to a file at once, so nothing accumulates, and
// reused pages avoid first-touch page faults, which dominate load time on VMs that back guest
// memory lazily (measured here: ~75 MB/s for fresh pages vs ~3 GB/s for reused ones).

import fs from 'node:fs';
import type { Checkpoint, TensorInfo } from '../types.ts';
import { INT4_BLOCK, int4Blocks, quantizeRowsInt4, zeroPointCols, type Int4Matrix } from '../quant-int4.ts';
import { quantizeRowsInt8, type Int8Matrix } from '../quant-int8.ts';
import { activeQuantPool, type RowChunk } from '../quant-pool.ts';

const CHUNK_BYTES = 8 << 20;
/** Smaller chunks when several threads share a matrix, so they finish together. */
const POOL_CHUNK_BYTES = 1 << 20;

type Pool = 'raw' | 'f32' | 'out' | 'packed' | 'scales' | 'zeros';

export class WeightReader {
  private readonly pools = new Map<Pool, ArrayBuffer | SharedArrayBuffer>();

  constructor(readonly ckpt: Checkpoint) {}

  /** A reusable buffer; `shared` ones (SharedArrayBuffer) are written by the quantization pool's threads. */
  private scratch(pool: Pool, bytes: number, shared = false): ArrayBuffer | SharedArrayBuffer {
    let b = this.pools.get(pool);
    if (!b || b.byteLength < bytes || (shared && !(b instanceof SharedArrayBuffer))) {
      const size = Math.max(bytes, Math.ceil((b?.byteLength ?? 0) * 1.25));
      b = shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
      this.pools.set(pool, b);
    }
    return b;
  }

  /** Reads bytes [start, start + len) of a file into `into` at byte offset `at`. */
  private readBytes(file: string, start: number, len: number, into: ArrayBuffer, at: number): void {
    const view = new Uint8Array(into, at, len);
    const fd = fs.openSync(file, 'r');
    try {
      let got = 0;
      while (got < len) {
        const n = fs.readSync(fd, view, got, len - got, start + got);
        if (n <= 0) throw new Error(`${file}: unexpected end of file`);
        got += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Rows [r0, r1) of `info` as fp32, written into `into` at float offset `at` (or a scratch).
   * safetensors is little-endian, as is every platform onnxruntime-node ships for.
   */
  rows(info: TensorInfo, r0: number, r1: number, into?: Float32Array, at = 0): Float32Array {
    const cols = info.shape.length > 1 ? info.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const count = (r1 - r0) * cols;
    const out = into ? into.subarray(at, at + count) : new Float32Array(this.scratch('f32', count * 4), 0, count);
    if (info.dtype === 'F32') {
      this.readBytes(info.file, info.byteStart + r0 * cols * 4, count * 4, out.buffer as ArrayBuffer, out.byteOffset);
      return out;
    }
    const raw = new Uint16Array(this.scratch('raw', count * 2), 0, count);
    this.readBytes(info.file, info.byteStart + r0 * cols * 2, count * 2, raw.buffer as ArrayBuffer, 0);
    if (info.dtype === 'BF16') {
      const u32 = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) u32[i] = (raw[i] as number) << 16;
    } else {
      for (let i = 0; i < count; i++) out[i] = halfToFloat(raw[i] as number);
    }
    return out;
  }

  /** A whole tensor as fp32 (scratch). */
  tensor(name: string): Float32Array {
    const info = this.ckpt.info(name);
    return this.rows(info, 0, info.shape[0] ?? 1);
  }

  /** Several [n_i, K] tensors stacked along rows as one fp32 [sum n_i, K] (scratch). */
  fusedRows(names: readonly string[]): { data: Float32Array; rows: number; cols: number } {
    const infos = names.map((n) => this.ckpt.info(n));
    const cols = infos[0]?.shape[1] ?? 1;
    const rows = infos.reduce((s, i) => s + (i.shape[0] ?? 0), 0);
    const data = new Float32Array(this.scratch('out', rows * cols * 4), 0, rows * cols);
    let r = 0;
    for (const info of infos) {
      const n = info.shape[0] ?? 0;
      this.rows(info, 0, n, data, r * cols);
      r += n;
    }
    return { data, rows, cols };
  }

  /** 1-D tensors concatenated (fused biases), fp32 (scratch). */
  fusedVector(names: readonly string[]): Float32Array {
    const infos = names.map((n) => this.ckpt.info(n));
    const len = infos.reduce((s, i) => s + (i.shape[0] ?? 0), 0);
    const data = new Float32Array(this.scratch('out', len * 4), 0, len);
    let o = 0;
    for (const info of infos) {
      this.rows(info, 0, info.shape[0] ?? 0, data, o);
      o += info.shape[0] ?? 0;
    }
    return data;
  }

  /** int8 (bits = 8 MatMulNBits / GatherBlockQuantized layout) of one or several [n_i, K] tensors
   *  stacked along rows, or rows [r0, r1) of a single one (default all; scratch). Only the
   *  vocabulary matrices and ragged projections take it (see build-shard.ts), so no pool. */
  int8(names: string | readonly string[], range?: readonly [number, number], block: number = INT4_BLOCK): Int8Matrix {
    const st = this.stacked(typeof names === 'string' ? [names] : names, range);
    const blocks = int4Blocks(st.cols, block);
    const m: Int8Matrix = {
      rows: st.rows,
      cols: st.cols,
      blocks,
      block,
      packed: new Uint8Array(this.scratch('packed', st.rows * blocks * block), 0, st.rows * blocks * block),
      scales: new Float32Array(this.scratch('scales', st.rows * blocks * 4), 0, st.rows * blocks),
    };
    this.inRowChunks(st, (src, n, dstRow) => quantizeRowsInt8(src, n, m, dstRow));
    return m;
  }

  /** Several [n_i, K] tensors stacked along rows, or rows [lo, hi) of a single one. */
  private stacked(names: readonly string[], range?: readonly [number, number]): Stacked {
    const infos = names.map((n) => this.ckpt.info(n));
    const [lo, hi] = range ?? [0, Infinity];
    const rowsOf = (i: TensorInfo): number => Math.min(hi, i.shape[0] ?? 0) - lo;
    return { infos, cols: infos[0]?.shape[1] ?? 1, lo, rowsOf, rows: infos.reduce((s, i) => s + rowsOf(i), 0) };
  }

  /** Calls fn with the stacked rows as fp32, CHUNK_BYTES at a time, and where they go in the result. */
  private inRowChunks(st: Stacked, fn: (src: Float32Array, n: number, dstRow: number) => void): void {
    const step = Math.max(1, Math.floor(CHUNK_BYTES / (st.cols * 4)));
    let row = 0;
    for (const info of st.infos) {
      const end = st.lo + st.rowsOf(info);
      for (let r = st.lo; r < end; r += step) {
        const r1 = Math.min(end, r + step);
        fn(this.rows(info, r, r1), r1 - r, row + r - st.lo);
      }
      row += end - st.lo;
    }
  }

  /**
   * int4 (MatMulNBits layout) of several [n_i, K] tensors stacked along rows (scratch); with
   * `range`, only rows [r0, r1) of a single tensor. `zeroPoints`: asymmetric, with uint4 zero points.
   */
  fusedInt4(names: readonly string[], range?: readonly [number, number], block: number = INT4_BLOCK, zeroPoints = false): Int4Matrix {
    const st = this.stacked(names, range);
    const { infos, cols, lo, rowsOf, rows } = st;
    const blocks = int4Blocks(cols, block);
    const pool = activeQuantPool();
    const shared = pool !== null && pool.size > 1;
    const m: Int4Matrix = {
      rows,
      cols,
      blocks,
      block,
      packed: new Uint8Array(this.scratch('packed', rows * blocks * (block / 2), shared), 0, rows * blocks * (block / 2)),
      scales: new Float32Array(this.scratch('scales', rows * blocks * 4, shared), 0, rows * blocks),
      ...(zeroPoints ? { zeros: new Uint8Array(this.scratch('zeros', rows * zeroPointCols(blocks), shared), 0, rows * zeroPointCols(blocks)) } : {}),
    };
    if (pool !== null && shared) {
      const step = Math.max(1, Math.floor(POOL_CHUNK_BYTES / (cols * 4)));
      const chunks: RowChunk[] = [];
      let row = 0;
      for (const info of infos) {
        const end = lo + rowsOf(info);
        for (let r = lo; r < end; r += step) {
          chunks.push({ file: info.file, byteStart: info.byteStart, dtype: info.dtype, r0: r, rows: Math.min(end, r + step) - r, dstRow: row + r - lo });
        }
        row += end - lo;
      }
      const byFile = new Map(infos.map((i) => [`${i.file}:${i.byteStart}`, i]));
      pool.run(chunks, m, (c) => {
        const info = byFile.get(`${c.file}:${c.byteStart}`) as TensorInfo;
        quantizeRowsInt4(this.rows(info, c.r0, c.r0 + c.rows), c.rows, m, c.dstRow);
      });
      return m;
    }
    this.inRowChunks(st, (src, n, dstRow) => quantizeRowsInt4(src, n, m, dstRow));
    return m;
  }
}

interface Stacked {
  readonly infos: readonly TensorInfo[];
  readonly cols: number;
  /** First row taken of each tensor. */
  readonly lo: number;
  readonly rowsOf: (i: TensorInfo) => number;
  readonly rows: number;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
