// Encoders for the types a Q4_K_M file holds (Q4_K, Q6_K, and Q5_0/Q8_0 where a row is not a whole
// number of 256-value super-blocks), in ggml's block layouts (ggml-common.h block_q4_K, block_q6_K,
// block_q5_0). The scale search is the simple one (each sub-block's own range, scales quantized to
// 6/8 bits against the super-block's largest), not llama-quantize's iterative make_qkx2_quants:
// the files are valid and decode the same everywhere, which is what a reader's agreement with
// llama.cpp needs; their quality is a little below llama-quantize's.

import { fromHalf, toHalf } from './ggml-quant.ts';

const f = Math.fround;
const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/** block_q5_0: half d; uint8 qh[4]; uint8 qs[16] (quantize_row_q5_0_ref). */
export function quantizeQ5_0(x: Float32Array, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < x.length / 32; i++) {
    const o = i * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[o + j] as number;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -16);
    const id = d !== 0 ? f(1 / d) : 0;
    const ob = i * 22;
    dv.setUint16(ob, toHalf(d), true);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, Math.trunc(f(f((x[o + j] as number) * id) + 16.5)));
      const q1 = Math.min(31, Math.trunc(f(f((x[o + 16 + j] as number) * id) + 16.5)));
      out[ob + 6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    dv.setUint32(ob + 2, qh >>> 0, true);
  }
}

/** block_q4_K: half d; half dmin; uint8 scales[12]; uint8 qs[128] — value = d·sc·q − dmin·m. */
export function quantizeQ4_K(x: Float32Array, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < x.length / 256; i++) {
    const o = i * 256;
    const ob = i * 144;
    const scale = new Float32Array(8);
    const mins = new Float32Array(8);
    for (let s = 0; s < 8; s++) {
      let lo = 0;
      let hi = -Infinity;
      for (let l = 0; l < 32; l++) {
        const v = x[o + s * 32 + l] as number;
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      scale[s] = (hi - lo) / 15;
      mins[s] = -lo;
    }
    const d = fromHalf(toHalf(Math.max(...scale) / 63));
    const dmin = fromHalf(toHalf(Math.max(...mins) / 63));
    dv.setUint16(ob, toHalf(d), true);
    dv.setUint16(ob + 2, toHalf(dmin), true);
    const ls = new Uint8Array(8);
    const lm = new Uint8Array(8);
    for (let s = 0; s < 8; s++) {
      ls[s] = d > 0 ? clamp(Math.round((scale[s] as number) / d), 0, 63) : 0;
      lm[s] = dmin > 0 ? clamp(Math.round((mins[s] as number) / dmin), 0, 63) : 0;
    }
    const sc = ob + 4;
    for (let j = 0; j < 8; j++) {
      if (j < 4) {
        out[sc + j] = ls[j] as number;
        out[sc + j + 4] = lm[j] as number;
      } else {
        out[sc + j + 4] = ((ls[j] as number) & 0xf) | (((lm[j] as number) & 0xf) << 4);
        out[sc + j - 4] = (out[sc + j - 4] as number) | (((ls[j] as number) >> 4) << 6);
        out[sc + j] = (out[sc + j] as number) | (((lm[j] as number) >> 4) << 6);
      }
    }
    const L = new Uint8Array(256);
    for (let s = 0; s < 8; s++) {
      const dl = f(d * (ls[s] as number));
      const ml = f(dmin * (lm[s] as number));
      for (let l = 0; l < 32; l++) L[s * 32 + l] = dl > 0 ? clamp(Math.round(((x[o + s * 32 + l] as number) + ml) / dl), 0, 15) : 0;
    }
    const qs = ob + 16;
    for (let j = 0; j < 256; j += 64) for (let l = 0; l < 32; l++) out[qs + j / 2 + l] = (L[j + l] as number) | ((L[j + l + 32] as number) << 4);
  }
}

/** block_q6_K: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d — value = d·sc·(q − 32). */
export function quantizeQ6_K(x: Float32Array, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < x.length / 256; i++) {
    const o = i * 256;
    const ob = i * 210;
    const scale = new Float32Array(16);
    for (let s = 0; s < 16; s++) {
      let amax = 0;
      let max = 0;
      for (let l = 0; l < 16; l++) {
        const v = x[o + s * 16 + l] as number;
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      scale[s] = max / -32;
    }
    let smax = 0;
    for (const s of scale) if (Math.abs(s) > Math.abs(smax)) smax = s;
    const d = fromHalf(toHalf(smax / -128));
    dv.setUint16(ob + 208, toHalf(d), true);
    const L = new Uint8Array(256);
    for (let s = 0; s < 16; s++) {
      const q = d !== 0 ? clamp(Math.round((scale[s] as number) / d), -128, 127) : 0;
      dv.setInt8(ob + 192 + s, q);
      const dl = f(d * q);
      for (let l = 0; l < 16; l++) L[s * 16 + l] = dl !== 0 ? clamp(Math.round((x[o + s * 16 + l] as number) / dl), -32, 31) + 32 : 32;
    }
    for (let j = 0, ql = ob, qh = ob + 128; j < 256; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const q1 = (L[j + l] as number) & 0xf;
        const q2 = (L[j + l + 32] as number) & 0xf;
        const q3 = (L[j + l + 64] as number) & 0xf;
        const q4 = (L[j + l + 96] as number) & 0xf;
        out[ql + l] = q1 | (q3 << 4);
        out[ql + l + 32] = q2 | (q4 << 4);
        out[qh + l] = ((L[j + l] as number) >> 4) | (((L[j + l + 32] as number) >> 4) << 2) | (((L[j + l + 64] as number) >> 4) << 4) | (((L[j + l + 96] as number) >> 4) << 6);
      }
    }
  }
}
