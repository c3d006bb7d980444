// Per-sequence KV cache of one stage, for each layer a K and a V array in one of two layouts:
// - 'position' (fused attention): [stride, Hkv, D], position-major, fp32 or fp16. The first `len`
//   rows are valid, so the past of a single sequence is a zero-copy prefix view, and a step appends
//   its new rows after them; capacity grows geometrically.
// - 'head' (GroupQueryAttention / plain): [Hkv, stride, D] (batch dim 1) whose first `len`
//   positions per head are valid. With GroupQueryAttention a single-sequence step
// passes the same array as past input and as pre-allocated present output, so the kernel appends in
// place (its shared-buffer mode) and nothing is copied; capacity grows geometrically. A batched step
// pads into one [B, Hkv, P, D] buffer and compacts each row back out afterwards.

/** fp32, or fp16 bits (onnxruntime's float16 tensors are Uint16Array). */
export type KvArray = Float32Array | Uint16Array;

export interface SeqKv {
  len: number;
  /** Positions the slab can hold (>= len). */
  stride: number;
  k: KvArray[];
  v: KvArray[];
}

export interface KvShape {
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Default 'head'. */
  readonly layout?: 'head' | 'position';
  /** fp16 elements (position layout only). */
  readonly half?: boolean;
}

export class KvStore {
  private readonly seqs = new Map<string, SeqKv>();
  constructor(readonly shape: KvShape) {}

  /** Bytes per cached position across this stage's layers (K and V, fp32). */
  get bytesPerPosition(): number {
    return this.shape.layers * 2 * this.shape.kvHeads * this.shape.headDim * (this.shape.half === true ? 2 : 4);
  }

  private alloc(n: number): KvArray {
    return this.shape.half === true ? new Uint16Array(n) : new Float32Array(n);
  }

  get(seq: string): SeqKv {
    let s = this.seqs.get(seq);
    if (!s) {
      const empty = (): KvArray[] => Array.from({ length: this.shape.layers }, () => this.alloc(0));
      s = { len: 0, stride: 0, k: empty(), v: empty() };
      this.seqs.set(seq, s);
    }
    return s;
  }

  length(seq: string): number {
    return this.seqs.get(seq)?.len ?? 0;
  }

  free(seq: string): void {
    this.seqs.delete(seq);
  }

  /** Makes room for `need` positions (copying the valid ones into larger slabs when short). */
  reserve(seq: string, need: number): SeqKv {
    const s = this.get(seq);
    if (s.stride >= need) return s;
    const stride = Math.max(need, Math.ceil(s.stride * 1.5), 64);
    const { kvHeads, headDim } = this.shape;
    const grow = (a: KvArray): KvArray => {
      const out = this.alloc(kvHeads * stride * headDim);
      if (this.shape.layout === 'position') {
        out.set(a.subarray(0, s.len * kvHeads * headDim) as never);
        return out;
      }
      for (let h = 0; h < kvHeads; h++) out.set(a.subarray(h * s.stride * headDim, (h * s.stride + s.len) * headDim) as never, h * stride * headDim);
      return out;
    };
    s.k = s.k.map(grow);
    s.v = s.v.map(grow);
    s.stride = stride;
    return s;
  }

  totalBytes(): number {
    let n = 0;
    for (const s of this.seqs.values()) n += s.len;
    return n * this.bytesPerPosition;
  }

  /** Cuts seq's KV back to its first `len` positions (a speculative step's rejected drafts). */
  truncate(seq: string, len: number): void {
    const s = this.seqs.get(seq);
    if (!s || len >= s.len) return;
    if (len === 0) {
      this.seqs.delete(seq);
      return;
    }
    // Position layout: rows past len are simply overwritten by the next step. Head layout keeps
    // exact-size arrays for the plain path, so it is cut to size.
    if (this.shape.layout !== 'position') {
      const cut = (a: KvArray): KvArray => sliceRow(a as Float32Array, this.shape, s.stride, [[0, len]]);
      s.k = s.k.map(cut);
      s.v = s.v.map(cut);
      s.stride = len;
    }
    s.len = len;
  }

  /** Starts `seq` as a copy of the first `len` positions of `from` (prefix reuse). */
  fork(seq: string, from: string, len: number): void {
    const src = this.seqs.get(from);
    const have = src?.len ?? 0;
    if (!src || len > have) throw new RangeError(`fork: ${from} holds ${have} positions, ${len} requested`);
    const rowSize = this.shape.kvHeads * this.shape.headDim;
    const cut = (a: KvArray): KvArray => (this.shape.layout === 'position' ? a.slice(0, len * rowSize) : sliceRow(a as Float32Array, this.shape, src.stride, [[0, len]]));
    this.seqs.set(seq, { len, stride: len, k: src.k.map(cut), v: src.v.map(cut) });
  }
}

/**
 * Copies position ranges of one row [Hkv, rowLen, D] (a view into a possibly batched buffer) into a
 * fresh [Hkv, sum(ranges), D] array.
 */
export function sliceRow(row: Float32Array, shape: KvShape, rowLen: number, ranges: readonly (readonly [number, number])[]): Float32Array {
  const { kvHeads, headDim } = shape;
  const outLen = ranges.reduce((s, [a, b]) => s + (b - a), 0);
  const out = new Float32Array(kvHeads * outLen * headDim);
  for (let h = 0; h < kvHeads; h++) {
    let o = h * outLen * headDim;
    for (const [a, b] of ranges) {
      const src = (h * rowLen + a) * headDim;
      const n = (b - a) * headDim;
      out.set(row.subarray(src, src + n), o);
      o += n;
    }
  }
  return out;
}

/** Right-pads several rows [Hkv, stride_b, D] (len_b valid) into one [B, Hkv, P, D] buffer. */
export function padRows(rows: readonly Float32Array[], lens: readonly number[], strides: readonly number[], shape: KvShape, p: number): Float32Array {
  const { kvHeads, headDim } = shape;
  const out = new Float32Array(rows.length * kvHeads * p * headDim);
  rows.forEach((row, b) => {
    const len = lens[b] ?? 0;
    const stride = strides[b] ?? len;
    for (let h = 0; h < kvHeads; h++) {
      out.set(row.subarray(h * stride * headDim, (h * stride + len) * headDim), (b * kvHeads + h) * p * headDim);
    }
  });
  return out;
}

/**
 * Position layout, several sequences: [p, B, Hkv, D] with row b holding its first len_b positions
 * (the rest zero; the step's past mask hides them).
 */
export function padPositions(rows: readonly KvArray[], lens: readonly number[], shape: KvShape, p: number): KvArray {
  const row = shape.kvHeads * shape.headDim;
  const b = rows.length;
  const out = shape.half === true ? new Uint16Array(p * b * row) : new Float32Array(p * b * row);
  rows.forEach((src, i) => {
    const len = lens[i] ?? 0;
    for (let t = 0; t < len; t++) out.set(src.subarray(t * row, (t + 1) * row) as never, (t * b + i) * row);
  });
  return out;
}
