// Raw GGUF tensor bytes → fp32, block by block, following ggml's reference dequantizers
// (ggml/src/ggml-quants.c dequantize_row_*). The arithmetic is fp32 as ggml's is (Math.fround at
// each step), so a value decodes to the very float llama.cpp's CPU reference computes.

import { GGML, ggmlBlockSize, ggmlByteSize, ggmlTypeName } from './ggml-types.ts';

const f = Math.fround;
let halfTable: Float32Array | null = null;

/** IEEE binary16 → fp32 for all 65536 patterns (built once; carry-blocks.ts reads it too). */
export function half(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

/** K-quants' packed 6-bit scale and min of sub-block j (ggml-quants.c get_scale_min_k4). */
function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [(q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >> 6) << 4), (q[o + j + 4]! >> 4) | ((q[o + j]! >> 6) << 4)];
}

/**
 * Decodes `n` values of ggml `type` from `src` (whole blocks) into `out` at `at`. Throws on a type
 * hearth does not decode; the caller turns that into a one-line HearthError naming the tensor.
 */
export function dequantize(type: number, src: Uint8Array, n: number, out: Float32Array, at = 0): void {
  const need = ggmlByteSize(type, n);
  if (need === null) throw new Error(`cannot decode ${n} values of ${ggmlTypeName(type)} (not whole ${ggmlBlockSize(type)}-value blocks, or a type hearth does not read)`);
  if (src.byteLength < need) throw new Error(`${ggmlTypeName(type)}: ${need} bytes needed, ${src.byteLength} given`);
  const h = half();
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const hf = (o: number): number => h[dv.getUint16(o, true)]!;
  switch (type) {
    case GGML.F32:
      for (let i = 0; i < n; i++) out[at + i] = dv.getFloat32(i * 4, true);
      return;
    case GGML.F16:
      for (let i = 0; i < n; i++) out[at + i] = hf(i * 2);
      return;
    case GGML.BF16: {
      const u = new Uint32Array(1);
      const fl = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) {
        u[0] = dv.getUint16(i * 2, true) << 16;
        out[at + i] = fl[0]!;
      }
      return;
    }
    case GGML.Q4_0:
      for (let b = 0, o = 0, y = at; b < n / 32; b++, o += 18, y += 32) {
        const d = hf(o);
        for (let j = 0; j < 16; j++) {
          const q = src[o + 2 + j]!;
          out[y + j] = f(((q & 0xf) - 8) * d);
          out[y + j + 16] = f(((q >> 4) - 8) * d);
        }
      }
      return;
    case GGML.Q4_1:
      for (let b = 0, o = 0, y = at; b < n / 32; b++, o += 20, y += 32) {
        const d = hf(o);
        const m = hf(o + 2);
        for (let j = 0; j < 16; j++) {
          const q = src[o + 4 + j]!;
          out[y + j] = f(f((q & 0xf) * d) + m);
          out[y + j + 16] = f(f((q >> 4) * d) + m);
        }
      }
      return;
    case GGML.Q5_0:
    case GGML.Q5_1: {
      const one = type === GGML.Q5_1;
      const size = one ? 24 : 22;
      for (let b = 0, o = 0, y = at; b < n / 32; b++, o += size, y += 32) {
        const d = hf(o);
        const m = one ? hf(o + 2) : 0;
        const qh = dv.getUint32(o + (one ? 4 : 2), true);
        const qs = o + (one ? 8 : 6);
        for (let j = 0; j < 16; j++) {
          const xh0 = ((qh >>> j) << 4) & 0x10;
          const xh1 = (qh >>> (j + 12)) & 0x10;
          const q = src[qs + j]!;
          if (one) {
            out[y + j] = f(f(((q & 0xf) | xh0) * d) + m);
            out[y + j + 16] = f(f(((q >> 4) | xh1) * d) + m);
          } else {
            out[y + j] = f((((q & 0xf) | xh0) - 16) * d);
            out[y + j + 16] = f((((q >> 4) | xh1) - 16) * d);
          }
        }
      }
      return;
    }
    case GGML.Q8_0:
      for (let b = 0, o = 0, y = at; b < n / 32; b++, o += 34, y += 32) {
        const d = hf(o);
        for (let j = 0; j < 32; j++) out[y + j] = f(dv.getInt8(o + 2 + j) * d);
      }
      return;
    case GGML.Q4_K:
    case GGML.Q5_K: {
      const five = type === GGML.Q5_K;
      const size = five ? 176 : 144;
      for (let b = 0, o = 0, y = at; b < n / 256; b++, o += size) {
        const d = hf(o);
        const dmin = hf(o + 2);
        const sc = o + 4;
        const qh = o + 16;
        let ql = five ? o + 48 : o + 16;
        let u1 = 1;
        let u2 = 2;
        for (let j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
          const [s1, m1] = scaleMinK4(is, src, sc);
          const [s2, m2] = scaleMinK4(is + 1, src, sc);
          const d1 = f(d * s1);
          const dm1 = f(dmin * m1);
          const d2 = f(d * s2);
          const dm2 = f(dmin * m2);
          for (let l = 0; l < 32; l++) {
            const q = src[ql + l]!;
            const hi1 = five && src[qh + l]! & u1 ? 16 : 0;
            out[y++] = f(f(d1 * ((q & 0xf) + hi1)) - dm1);
          }
          for (let l = 0; l < 32; l++) {
            const q = src[ql + l]!;
            const hi2 = five && src[qh + l]! & u2 ? 16 : 0;
            out[y++] = f(f(d2 * ((q >> 4) + hi2)) - dm2);
          }
        }
      }
      return;
    }
    case GGML.Q6_K:
      for (let b = 0, o = 0, y = at; b < n / 256; b++, o += 210) {
        const d = hf(o + 208);
        let ql = o;
        let qh = o + 128;
        let sc = o + 192;
        for (let nn = 0; nn < 256; nn += 128, y += 128, ql += 64, qh += 32, sc += 8) {
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const h6 = src[qh + l]!;
            const q1 = ((src[ql + l]! & 0xf) | (((h6 >> 0) & 3) << 4)) - 32;
            const q2 = ((src[ql + l + 32]! & 0xf) | (((h6 >> 2) & 3) << 4)) - 32;
            const q3 = ((src[ql + l]! >> 4) | (((h6 >> 4) & 3) << 4)) - 32;
            const q4 = ((src[ql + l + 32]! >> 4) | (((h6 >> 6) & 3) << 4)) - 32;
            out[y + l] = f(f(d * dv.getInt8(sc + is)) * q1);
            out[y + l + 32] = f(f(d * dv.getInt8(sc + is + 2)) * q2);
            out[y + l + 64] = f(f(d * dv.getInt8(sc + is + 4)) * q3);
            out[y + l + 96] = f(f(d * dv.getInt8(sc + is + 6)) * q4);
          }
        }
      }
      return;
    default:
      throw new Error(`${ggmlTypeName(type)} tensors are not decoded by hearth`);
  }
}
