// Symmetric int4 block quantization in the layout of onnxruntime's MatMulNBits (com.microsoft):
// for a weight W [N, K] (HF Linear layout: one row per output), each row is cut into blocks of
// `block` values along K (32 by default; 16..256, a power of two; the last block zero-padded), B is
// uint8 [N, ceil(K/block), block/2] with the low nibble holding the even k, scales are fp32
// [N * ceil(K/block)], and the zero point is the default 8.
// Scale choice starts from onnxruntime's own quantizer (MlasQuantizeBlockwise, symmetric): the value
// of largest magnitude maps to -8, so the full [-8, 7] range is used; then each block's scale (and
// rounding) is refitted by least squares (refitBlock).
// Asymmetric (zero points, as Q4_1 and GPTQ/AWQ files are): a matrix allocated with `zeros` gets a
// uint4 zero point per block ([N, ceil(blocks/2)], low nibble = even block: MatMulNBits' and
// GatherBlockQuantized's packed layout), values x ≈ (q − z)·scale with q in [0, 15]; see
// quantizeBlockAsym. Only integer (uint4) zero points: onnxruntime 1.30's fp32 zero points take its
// unpacked path (~150x slower, src/model/carried-blocks.ts).

export const INT4_BLOCK = 32;
export const INT4_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

export interface Int4Matrix {
  readonly rows: number;
  readonly cols: number;
  /** Blocks per row: ceil(cols / block). */
  readonly blocks: number;
  /** Values per block (default 32). */
  readonly block?: number;
  /** [rows, blocks, block / 2] */
  readonly packed: Uint8Array;
  /** [rows * blocks] */
  readonly scales: Float32Array;
  /** Asymmetric only: uint4 zero points [rows, ceil(blocks / 2)], low nibble = even block. */
  readonly zeros?: Uint8Array;
}

export function int4Blocks(cols: number, block: number = INT4_BLOCK): number {
  return Math.ceil(cols / block);
}

export function allocInt4(rows: number, cols: number, block: number = INT4_BLOCK, zeroPoints = false): Int4Matrix {
  const blocks = int4Blocks(cols, block);
  const m = { rows, cols, blocks, block, packed: new Uint8Array(rows * blocks * (block / 2)), scales: new Float32Array(rows * blocks) };
  return zeroPoints ? { ...m, zeros: new Uint8Array(rows * zeroPointCols(blocks)) } : m;
}

/** Bytes of one row's packed uint4 zero points: two blocks a byte. */
export function zeroPointCols(blocks: number): number {
  return Math.ceil(blocks / 2);
}

/**
 * Quantizes `src` ([n, cols] fp32, row-major) into rows [rowOffset, rowOffset + n) of `dst`.
 * Writing into a preallocated matrix lets callers fuse several weights (q|k|v, gate|up) and read a
 * large tensor in row chunks without ever holding it whole in fp32.
 *
 * This loop is most of a cold int4 load, so it avoids what costs here: Math.round compiles to a
 * data-dependent branch that random weights mispredict half the time (2.4× slower measured on
 * real weights), so rounding is floor(y + 0.5) with an exact, almost never taken correction; and
 * nibbles are packed as they are made. The result is Math.round's, bit for bit (round half up).
 */
export function quantizeRowsInt4(src: Float32Array, n: number, dst: Int4Matrix, rowOffset: number): void {
  const { cols, blocks, packed, scales } = dst;
  const block = dst.block ?? INT4_BLOCK;
  const half = block / 2;
  if (src.length < n * cols) throw new RangeError(`quantizeRowsInt4: need ${n * cols} values, got ${src.length}`);
  if (dst.zeros !== undefined) {
    const zeros = dst.zeros;
    const zc = zeroPointCols(blocks);
    for (let r = 0; r < n; r++) {
      const outRow = rowOffset + r;
      for (let b = 0; b < blocks; b++) {
        const k0 = r * cols + b * block;
        const z = quantizeBlockAsym(src, k0, Math.min((r + 1) * cols, k0 + block), block, packed, (outRow * blocks + b) * half, scales, outRow * blocks + b);
        // A row's blocks are written in order by one thread, so the even block's write clears the
        // byte (scratch is reused) and the odd block's ORs its nibble in.
        const zi = outRow * zc + (b >> 1);
        zeros[zi] = b & 1 ? (zeros[zi] as number) | (z << 4) : z;
      }
    }
    return;
  }
  for (let r = 0; r < n; r++) {
    const row = r * cols;
    const outRow = rowOffset + r;
    for (let b = 0; b < blocks; b++) {
      const k0 = row + b * block;
      const k1 = Math.min(row + cols, k0 + block);
      const scale = extremeOf(src, k0, k1) / -8;
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[outRow * blocks + b] = scale;
      const base = (outRow * blocks + b) * half;
      // Σx·q and Σq² of the rounded values (q = nibble - 8), for the refit below.
      let num = 0;
      let den = 0;
      for (let j = 0; j < half; j++) {
        const k = k0 + 2 * j;
        // Past the end of the row (padded last block): the zero point, 8.
        let lo = 8;
        let hi = 8;
        if (k < k1) {
          const x = src[k] as number;
          const y = x * inv;
          let f = Math.floor(y + 0.5);
          if (y < f - 0.5) f -= 1; // y + 0.5 rounded up across an integer: Math.round(y) is f - 1
          f = f < -8 ? -8 : f > 7 ? 7 : f;
          num += x * f;
          den += f * f;
          lo = f + 8;
        }
        if (k + 1 < k1) {
          const x = src[k + 1] as number;
          const y = x * inv;
          let f = Math.floor(y + 0.5);
          if (y < f - 0.5) f -= 1;
          f = f < -8 ? -8 : f > 7 ? 7 : f;
          num += x * f;
          den += f * f;
          hi = f + 8;
        }
        packed[base + j] = lo | (hi << 4);
      }
      if (den > 0) refitBlock(src, k0, k1, packed, base, scales, outRow * blocks + b, num, den);
    }
  }
}

/** The value of largest magnitude in src[k0, k1), with its sign (the first of equals); 0 when all are 0. */
export function extremeOf(src: Float32Array, k0: number, k1: number): number {
  let amax = 0;
  let vmax = 0;
  for (let k = k0; k < k1; k++) {
    const v = src[k] as number;
    const a = Math.abs(v);
    if (a > amax) {
      amax = a;
      vmax = v;
    }
  }
  return vmax;
}

/** Scratch for refitBlock: one block's values re-rounded (signed, -8..7). */
const qb = new Int8Array(256);

/**
 * Refines one block's round-to-nearest result (issue 25: at block 32 with an 8-bit embedding/head,
 * RTN alone came within 1-3% of Q4_0's KL divergence from fp32; refitted, at or below it on both
 * real models in ../shared/models, in and out of domain). Two least-squares steps: s1 = Σx·q / Σq²
 * for the rounded q (never a larger squared error than the max-magnitude scale), then
 * q' = round(x / s1) clamped to [-8, 7] and s2 = Σx·q' / Σq'². At a least-squares scale the error
 * is Σx² - (Σx·q)² / Σq², so the better of (q, s1) and (q', s2) is the one with the larger
 * (Σx·q)² / Σq²: one extra pass over the block, and a repack only when q' wins.
 */
function refitBlock(src: Float32Array, k0: number, k1: number, packed: Uint8Array, base: number, scales: Float32Array, si: number, num: number, den: number): void {
  const n = k1 - k0;
  const s1 = num / den;
  const inv = 1 / s1;
  let num2 = 0;
  let den2 = 0;
  for (let i = 0; i < n; i++) {
    const x = src[k0 + i] as number;
    const y = x * inv;
    let q = Math.floor(y + 0.5); // Math.round without its branch (see quantizeRowsInt4)
    if (y < q - 0.5) q -= 1;
    q = q < -8 ? -8 : q > 7 ? 7 : q;
    qb[i] = q;
    num2 += x * q;
    den2 += q * q;
  }
  if (!(den2 > 0 && (num2 * num2) / den2 > (num * num) / den)) {
    scales[si] = s1;
    return;
  }
  scales[si] = num2 / den2;
  for (let i = 0; i < n; i += 2) {
    const lo = (qb[i] as number) + 8;
    const hi = i + 1 < n ? (qb[i + 1] as number) + 8 : 8;
    packed[base + (i >> 1)] = lo | (hi << 4);
  }
}

/** Scratch for quantizeBlockAsym: the best and the candidate rounding (unsigned, 0..15). */
const qBest = new Uint8Array(256);
const qTry = new Uint8Array(256);

/** round(y) (half up) without Math.round's branch (see quantizeRowsInt4), clamped to [lo, hi]. */
function roundClamp(y: number, lo: number, hi: number): number {
  let q = Math.floor(y + 0.5);
  if (y < q - 0.5) q -= 1;
  return q < lo ? lo : q > hi ? hi : q;
}

/**
 * One asymmetric block: x ≈ (q − z)·s, q and z in [0, 15]. Starts from min/max (the range widened
 * to hold 0, so the integer z exists: s = (max − min) / 15, z = round(−min / s)), then refits in
 * rounds: a least-squares line x ≈ a·q + b through the current q gives the offset b, z = round(−b/a)
 * is the nearest integer zero point, s = Σx·u / Σu² (u = q − z) is the best scale for it, and the
 * values are re-rounded with (s, z). For any fixed integers u the squared error at the
 * least-squares scale is Σx² − (Σx·u)² / Σu², so a candidate is kept only when (Σx·u)² / Σu² grows:
 * never worse than min/max rounding. Writes the nibbles and the scale; returns z.
 */
function quantizeBlockAsym(src: Float32Array, k0: number, k1: number, block: number, packed: Uint8Array, base: number, scales: Float32Array, si: number): number {
  const n = k1 - k0;
  let mn = 0;
  let mx = 0;
  for (let k = k0; k < k1; k++) {
    const v = src[k] as number;
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  if (mx === mn) {
    // All zero: any z with scale 0; 8 as the symmetric layout would store.
    scales[si] = 0;
    packed.fill(0x88, base, base + block / 2);
    return 8;
  }
  let s = (mx - mn) / 15;
  let z = roundClamp(-mn / s, 0, 15);
  let bestScore = -1;
  let bestS = s;
  let bestZ = z;
  for (let round = 0; round < 3; round++) {
    // Round with (s, z) and score the result at its least-squares scale.
    const inv = 1 / s;
    let sq = 0;
    let sqq = 0;
    let sx = 0;
    let sxq = 0;
    for (let i = 0; i < n; i++) {
      const x = src[k0 + i] as number;
      const q = roundClamp(x * inv + z, 0, 15);
      qTry[i] = q;
      sq += q;
      sqq += q * q;
      sx += x;
      sxq += x * q;
    }
    const sxu = sxq - z * sx;
    const suu = sqq - 2 * z * sq + n * z * z;
    if (suu > 0 && sxu > 0 && (sxu * sxu) / suu > bestScore) {
      bestScore = (sxu * sxu) / suu;
      bestS = sxu / suu;
      bestZ = z;
      qBest.set(qTry.subarray(0, n));
    }
    // The same q with the zero point nearest the least-squares line's offset.
    const det = n * sqq - sq * sq;
    if (!(det > 0)) break;
    const a = (n * sxq - sq * sx) / det;
    if (!(a > 0)) break;
    const b = (sx - a * sq) / n;
    const z2 = roundClamp(-b / a, 0, 15);
    const sxu2 = sxq - z2 * sx;
    const suu2 = sqq - 2 * z2 * sq + n * z2 * z2;
    if (!(suu2 > 0 && sxu2 > 0)) break;
    if ((sxu2 * sxu2) / suu2 > bestScore) {
      bestScore = (sxu2 * sxu2) / suu2;
      bestS = sxu2 / suu2;
      bestZ = z2;
      qBest.set(qTry.subarray(0, n));
    }
    // Next round re-rounds with the best (s, z) so far.
    if (bestS === s && bestZ === z) break;
    s = bestS;
    z = bestZ;
  }
  if (bestScore < 0) {
    // Degenerate (no positive correlation): plain min/max rounding.
    const inv = 1 / s;
    for (let i = 0; i < n; i++) qBest[i] = roundClamp((src[k0 + i] as number) * inv + z, 0, 15);
    bestS = s;
    bestZ = z;
  }
  scales[si] = bestS;
  // Past the row's end (padded last block): the zero point, so padding dequantizes to 0.
  for (let i = 0; i < block; i += 2) {
    const lo = i < n ? (qBest[i] as number) : bestZ;
    const hi = i + 1 < n ? (qBest[i + 1] as number) : bestZ;
    packed[base + (i >> 1)] = lo | (hi << 4);
  }
  return bestZ;
}

/** Quantizes a whole [rows, cols] matrix (asymmetric with `zeroPoints`). */
export function quantizeInt4(src: Float32Array, rows: number, cols: number, block: number = INT4_BLOCK, zeroPoints = false): Int4Matrix {
  const m = allocInt4(rows, cols, block, zeroPoints);
  quantizeRowsInt4(src, rows, m, 0);
  return m;
}

/** Back to fp32 [rows, cols] (tests, and measuring the quantization error). */
export function dequantizeInt4(m: Int4Matrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const block = m.block ?? INT4_BLOCK;
  for (let r = 0; r < m.rows; r++) {
    for (let k = 0; k < m.cols; k++) {
      const b = Math.floor(k / block);
      const j = k % block;
      const byte = m.packed[(r * m.blocks + b) * (block / 2) + (j >> 1)] as number;
      const nib = j & 1 ? byte >> 4 : byte & 15;
      const zb = m.zeros === undefined ? 8 : (m.zeros[r * zeroPointCols(m.blocks) + (b >> 1)] as number);
      const z = m.zeros === undefined ? 8 : b & 1 ? zb >> 4 : zb & 15;
      out[r * m.cols + k] = (nib - z) * (m.scales[r * m.blocks + b] as number);
    }
  }
  return out;
}

/**
 * int4 block size when the caller names none: HEARTH_INT4_BLOCK, else 128 (the engine's default,
 * see runtime/shard-session.ts defaultInt4Block, which says how it was chosen). Here so that the
 * planner, which must not load onnxruntime, counts the same bytes the engine builds.
 */
export function defaultInt4BlockSize(): number {
  const env = Number(process.env['HEARTH_INT4_BLOCK']);
  return (INT4_BLOCK_SIZES as readonly number[]).includes(env) ? env : 128;
}

/**
 * Whether int4 weights are quantized with zero points when the caller names nothing:
 * HEARTH_INT4_ZERO_POINTS=1, else symmetric. Beside the block size for the same reason (the
 * planner and the shard cache key read it without loading onnxruntime).
 */
export function defaultInt4ZeroPoints(): boolean {
  return process.env['HEARTH_INT4_ZERO_POINTS'] === '1';
}

/** Bytes of a MatMulNBits weight [rows, cols] as built: packed nibbles + one fp32 scale per block,
 *  + half a byte of zero point per block when asymmetric (symmetric: the implicit 8, none stored). */
export function int4MatrixBytes(rows: number, cols: number, block: number, zeroPoints = false): number {
  const blocks = int4Blocks(cols, block);
  return rows * (blocks * (block / 2 + 4) + (zeroPoints ? zeroPointCols(blocks) : 0));
}
