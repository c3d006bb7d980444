// ggml's tensor encodings used by the GGUF writer: f32, f16, Q4_0 and Q8_0, byte for byte as
// ggml's reference quantizers write them (ggml/src/ggml-quants.c: quantize_row_q4_0_ref,
// quantize_row_q8_0_ref), plus the dequantizers the tests check them with.

import { quantizeQ4_K, quantizeQ5_0, quantizeQ6_K } from './ggml-kquant.ts';

/** ggml_type ids (ggml/include/ggml.h). */
export const GGML = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q5_0: 6, Q4_K: 12, Q6_K: 14 } as const;
export type GgmlType = (typeof GGML)[keyof typeof GGML];

/** Values per block and bytes per block of each type. */
export const BLOCK: Record<GgmlType, { readonly values: number; readonly bytes: number }> = {
  [GGML.F32]: { values: 1, bytes: 4 },
  [GGML.F16]: { values: 1, bytes: 2 },
  // half d; uint8 qs[16]
  [GGML.Q4_0]: { values: 32, bytes: 18 },
  // half d; int8 qs[32]
  [GGML.Q8_0]: { values: 32, bytes: 34 },
  // what a Q4_K_M file holds (src/ggml-kquant.ts)
  [GGML.Q5_0]: { values: 32, bytes: 22 },
  [GGML.Q4_K]: { values: 256, bytes: 144 },
  [GGML.Q6_K]: { values: 256, bytes: 210 },
};

export function typeName(t: GgmlType): string {
  return (Object.keys(GGML) as (keyof typeof GGML)[]).find((k) => GGML[k] === t) ?? String(t);
}

/** Bytes a row-major tensor with `count` values takes in type t (count must fill whole blocks). */
export function byteSize(t: GgmlType, count: number): number {
  const b = BLOCK[t];
  if (count % b.values !== 0) throw new Error(`${typeName(t)} needs a multiple of ${b.values} values, got ${count}`);
  return (count / b.values) * b.bytes;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from a float, round to nearest even (what the F16C instruction ggml uses does). */
export function toHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa right, rounding to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Encodes x (length a multiple of the block) into out, which must hold byteSize(t, x.length). */
export function encode(t: GgmlType, x: Float32Array, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (t === GGML.F32) {
    for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i] as number, true);
  } else if (t === GGML.F16) {
    for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, toHalf(x[i] as number), true);
  } else if (t === GGML.Q4_0) {
    quantizeQ4_0(x, out, dv);
  } else if (t === GGML.Q5_0) {
    quantizeQ5_0(x, out);
  } else if (t === GGML.Q4_K) {
    quantizeQ4_K(x, out);
  } else if (t === GGML.Q6_K) {
    quantizeQ6_K(x, out);
  } else {
    quantizeQ8_0(x, out, dv);
  }
}

function quantizeQ4_0(x: Float32Array, out: Uint8Array, dv: DataView): void {
  const nb = x.length / 32;
  for (let i = 0; i < nb; i++) {
    const o = i * 32;
    // d = max / -8 where max is the value of largest magnitude, sign kept: that value maps to -8
    // exactly and the other side gets the extra step (q in 0..15, zero at 8).
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[o + j] as number;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d !== 0 ? 1 / d : 0;
    const ob = i * 18;
    dv.setUint16(ob, toHalf(d), true);
    for (let j = 0; j < 16; j++) {
      // (int8_t)(x + 8.5f) truncates toward zero; Math.fround keeps ggml's float rounding.
      const x0 = Math.fround(Math.fround((x[o + j] as number) * Math.fround(id)) + 8.5);
      const x1 = Math.fround(Math.fround((x[o + 16 + j] as number) * Math.fround(id)) + 8.5);
      const q0 = Math.min(15, Math.trunc(x0));
      const q1 = Math.min(15, Math.trunc(x1));
      out[ob + 2 + j] = q0 | (q1 << 4);
    }
  }
}

function quantizeQ8_0(x: Float32Array, out: Uint8Array, dv: DataView): void {
  const nb = x.length / 32;
  for (let i = 0; i < nb; i++) {
    const o = i * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j] as number));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const ob = i * 34;
    dv.setUint16(ob, toHalf(d), true);
    // roundf: half away from zero.
    for (let j = 0; j < 32; j++) {
      const v = Math.fround((x[o + j] as number) * id);
      dv.setInt8(ob + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
}

/** Decodes count values of type t from bytes (for tests and checks). */
export function decode(t: GgmlType, bytes: Uint8Array, count: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const y = new Float32Array(count);
  if (t === GGML.F32) for (let i = 0; i < count; i++) y[i] = dv.getFloat32(i * 4, true);
  else if (t === GGML.F16) for (let i = 0; i < count; i++) y[i] = fromHalf(dv.getUint16(i * 2, true));
  else if (t === GGML.Q4_0) {
    for (let i = 0; i < count / 32; i++) {
      const d = fromHalf(dv.getUint16(i * 18, true));
      for (let j = 0; j < 16; j++) {
        const b = bytes[i * 18 + 2 + j] as number;
        y[i * 32 + j] = ((b & 0x0f) - 8) * d;
        y[i * 32 + 16 + j] = ((b >> 4) - 8) * d;
      }
    }
  } else {
    for (let i = 0; i < count / 32; i++) {
      const d = fromHalf(dv.getUint16(i * 34, true));
      for (let j = 0; j < 32; j++) y[i * 32 + j] = dv.getInt8(i * 34 + 2 + j) * d;
    }
  }
  return y;
}
