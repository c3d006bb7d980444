// A GGUF tensor's blocks → MatMulNBits' layout with nothing lost (issue 24), so a quantized file is
// served at about its own size rather than as fp32. Each ggml value is q·d (+ an offset per 32
// values for the types with a minimum); the integers q and the fp32 products d (K-quants: d·sc,
// rounded to fp32 as ggml-quants.c does) are carried as they are:
//
//   Q4_0  (q−8)·d              int4, block 32, zero point 8          exact
//   Q4_1  q·d + m               int4, block 32, offset 8d + m         exact up to fp32 rounding of the sum
//   Q5_0  (q−16)·d             int8, block 32 (q + 112)               exact
//   Q5_1  q·d + m               int8, block 32 (q + 128), offset m    as Q4_1
//   Q8_0  q·d                   int8, block 32 (q + 128)               exact
//   Q4_K  d·sc·q − dmin·m       int4, block 32, offset 8·d·sc − dmin·m  as Q4_1
//   Q5_K  d·sc·q − dmin·m       int8, block 32 (q + 128), offset −dmin·m  as Q4_1
//   Q6_K  d·sc·(q−32)          int8, block 16 (q + 96)                exact
//
// (src/model/carried-blocks.ts says why offsets are a separate product.) F32/F16/BF16 are not
// carried here: the builder keeps them as fp32.

import { OFFSET_GROUP, type CarriedFormat, type CarriedMatrix } from '../model/carried-blocks.ts';
import { GGML, ggmlByteSize, ggmlTypeName } from './ggml-types.ts';
import { half } from './dequantize.ts';

const f = Math.fround;

const FORMATS: Readonly<Record<number, CarriedFormat>> = {
  [GGML.Q4_0]: { bits: 4, block: 32, offsets: false },
  [GGML.Q4_1]: { bits: 4, block: 32, offsets: true },
  [GGML.Q5_0]: { bits: 8, block: 32, offsets: false },
  [GGML.Q5_1]: { bits: 8, block: 32, offsets: true },
  [GGML.Q8_0]: { bits: 8, block: 32, offsets: false },
  [GGML.Q4_K]: { bits: 4, block: 32, offsets: true },
  [GGML.Q5_K]: { bits: 8, block: 32, offsets: true },
  [GGML.Q6_K]: { bits: 8, block: 16, offsets: false },
};

/** The carried format of a ggml type, or null for F32/F16/BF16 (built as fp32). */
export function carriedFormatOf(type: number): CarriedFormat | null {
  return FORMATS[type] ?? null;
}

/** K-quants' packed 6-bit scale and min of sub-block j (ggml-quants.c get_scale_min_k4). */
function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [(q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >> 6) << 4), (q[o + j + 4]! >> 4) | ((q[o + j]! >> 6) << 4)];
}

/**
 * `rows` rows of `cols` values of ggml `type` (raw, row after row) in their carried format.
 * Throws for a type carriedFormatOf does not carry.
 */
export function carryRows(type: number, src: Uint8Array, rows: number, cols: number): CarriedMatrix {
  const fmt = carriedFormatOf(type);
  const rowBytes = ggmlByteSize(type, cols);
  if (fmt === null || rowBytes === null) throw new Error(`${ggmlTypeName(type)} [${rows}, ${cols}] is not carried as blocks`);
  if (src.byteLength < rows * rowBytes) throw new Error(`${ggmlTypeName(type)}: ${rows * rowBytes} bytes needed, ${src.byteLength} given`);
  const { bits, block } = fmt;
  const blocks = cols / block; // every carried type's rows are whole 32- (or 256-) value blocks
  const n = rows * cols;
  // One q per value first (as the zero-pointed unsigned MatMulNBits value), then packed.
  const q = new Uint8Array(n);
  const scales = new Float32Array(rows * blocks);
  const offsetValues = fmt.offsets ? new Float32Array(n / OFFSET_GROUP) : null;
  const h = half();
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const hf = (o: number): number => h[dv.getUint16(o, true)]!;
  // Values are in row order and blocks never cross rows, so the tensor is one run of blocks.
  switch (type) {
    case GGML.Q4_0:
    case GGML.Q4_1: {
      const one = type === GGML.Q4_1;
      const size = one ? 20 : 18;
      for (let b = 0, o = 0, y = 0; b < n / 32; b++, o += size, y += 32) {
        const d = hf(o);
        scales[b] = d;
        if (offsetValues) offsetValues[b] = f(f(8 * d) + hf(o + 2));
        const qs = o + (one ? 4 : 2);
        for (let j = 0; j < 16; j++) {
          q[y + j] = src[qs + j]! & 0xf;
          q[y + j + 16] = src[qs + j]! >> 4;
        }
      }
      break;
    }
    case GGML.Q5_0:
    case GGML.Q5_1: {
      const one = type === GGML.Q5_1;
      const size = one ? 24 : 22;
      const shift = one ? 128 : 112;
      for (let b = 0, o = 0, y = 0; b < n / 32; b++, o += size, y += 32) {
        scales[b] = hf(o);
        if (offsetValues) offsetValues[b] = hf(o + 2);
        const qh = dv.getUint32(o + (one ? 4 : 2), true);
        const qs = o + (one ? 8 : 6);
        for (let j = 0; j < 16; j++) {
          const xh0 = ((qh >>> j) << 4) & 0x10;
          const xh1 = (qh >>> (j + 12)) & 0x10;
          q[y + j] = ((src[qs + j]! & 0xf) | xh0) + shift;
          q[y + j + 16] = ((src[qs + j]! >> 4) | xh1) + shift;
        }
      }
      break;
    }
    case GGML.Q8_0:
      for (let b = 0, o = 0, y = 0; b < n / 32; b++, o += 34, y += 32) {
        scales[b] = hf(o);
        for (let j = 0; j < 32; j++) q[y + j] = dv.getInt8(o + 2 + j) + 128;
      }
      break;
    case GGML.Q4_K:
    case GGML.Q5_K: {
      const five = type === GGML.Q5_K;
      const size = five ? 176 : 144;
      for (let b = 0, o = 0, y = 0, g = 0; b < n / 256; b++, o += size) {
        const d = hf(o);
        const dmin = hf(o + 2);
        const qh = o + 16;
        let ql = five ? o + 48 : o + 16;
        let u1 = 1;
        let u2 = 2;
        for (let j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
          for (const [sub, lowNibble, u] of [[is, true, u1], [is + 1, false, u2]] as const) {
            const [s, m] = scaleMinK4(sub, src, o + 4);
            const d1 = f(d * s);
            const dm1 = f(dmin * m);
            scales[g] = d1;
            offsetValues![g] = five ? -dm1 : f(f(8 * d1) - dm1);
            g++;
            for (let l = 0; l < 32; l++) {
              const byte = src[ql + l]!;
              const lo = lowNibble ? byte & 0xf : byte >> 4;
              q[y++] = five ? lo + (src[qh + l]! & u ? 16 : 0) + 128 : lo;
            }
          }
        }
      }
      break;
    }
    case GGML.Q6_K:
      for (let b = 0, o = 0, y = 0; b < n / 256; b++, o += 210) {
        const d = hf(o + 208);
        let ql = o;
        let qh = o + 128;
        let sc = o + 192;
        // 16-value sub-blocks: value index y + i·16 has scale sc[i] within each half of 128.
        for (let nn = 0; nn < 256; nn += 128, y += 128, ql += 64, qh += 32, sc += 8) {
          for (let i = 0; i < 8; i++) scales[(y >> 4) + i] = f(d * dv.getInt8(sc + i));
          for (let l = 0; l < 32; l++) {
            const h6 = src[qh + l]!;
            q[y + l] = ((src[ql + l]! & 0xf) | ((h6 & 3) << 4)) + 96;
            q[y + l + 32] = ((src[ql + l + 32]! & 0xf) | (((h6 >> 2) & 3) << 4)) + 96;
            q[y + l + 64] = ((src[ql + l]! >> 4) | (((h6 >> 4) & 3) << 4)) + 96;
            q[y + l + 96] = ((src[ql + l + 32]! >> 4) | (((h6 >> 6) & 3) << 4)) + 96;
          }
        }
      }
      break;
    default:
      throw new Error(`${ggmlTypeName(type)} is not carried as blocks`);
  }
  let packed = q;
  if (bits === 4) {
    packed = new Uint8Array(n / 2);
    for (let i = 0; i < n / 2; i++) packed[i] = q[2 * i]! | (q[2 * i + 1]! << 4);
  }
  return { ...fmt, rows, cols, blocks, packed, scales, offsetValues };
}

/** Back to fp32 the way MatMulNBits (accuracy_level 0) reads it: (q − zero point)·scale + offset. */
export function dequantizeCarried(m: CarriedMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const zp = m.bits === 4 ? 8 : 128;
  for (let i = 0; i < out.length; i++) {
    const qv = m.bits === 4 ? (m.packed[i >> 1]! >> ((i & 1) * 4)) & 0xf : m.packed[i]!;
    let v = f((qv - zp) * m.scales[Math.floor(i / m.block)]!);
    if (m.offsetValues) v = f(v + m.offsetValues[Math.floor(i / OFFSET_GROUP)]!);
    out[i] = v;
  }
  return out;
}
