// The GGUF container, version 3 (ggml/docs/gguf.md): header, metadata key/values, tensor table,
// then tensor data at `general.alignment`-aligned offsets. writeGguf streams tensor data one tensor
// at a time (a 0.5B checkpoint never sits in memory quantized and unquantized at once);
// readGguf parses everything but the data, for tests and checks.

import fs from 'node:fs';
import { byteSize, type GgmlType } from './ggml-quant.ts';

/** gguf_type ids. */
export const GV = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;
type Scalar = typeof GV.U32 | typeof GV.I32 | typeof GV.F32 | typeof GV.BOOL | typeof GV.STRING | typeof GV.U64;

export type MetaValue =
  | { readonly type: Scalar; readonly value: number | boolean | string }
  | { readonly type: typeof GV.ARRAY; readonly of: Scalar; readonly value: readonly (number | boolean | string)[] };

export const u32 = (value: number): MetaValue => ({ type: GV.U32, value });
export const f32 = (value: number): MetaValue => ({ type: GV.F32, value });
export const str = (value: string): MetaValue => ({ type: GV.STRING, value });
export const bool = (value: boolean): MetaValue => ({ type: GV.BOOL, value });
export const arr = (of: Scalar, value: readonly (number | boolean | string)[]): MetaValue => ({ type: GV.ARRAY, of, value });

export interface TensorPlan {
  readonly name: string;
  /** ggml order: ne[0] is the contiguous (innermost) dimension, i.e. a HF [out, in] matrix is [in, out]. */
  readonly dims: readonly number[];
  readonly type: GgmlType;
  /** The encoded bytes (byteSize(type, product of dims) of them); called once, in table order. */
  readonly data: () => Uint8Array;
}

export const ALIGNMENT = 32;

class Bytes {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  scalar(type: Scalar, v: number | boolean | string): void {
    const b = Buffer.alloc(type === GV.BOOL ? 1 : type === GV.U64 ? 8 : 4);
    if (type === GV.STRING) return this.string(v as string);
    if (type === GV.U32) b.writeUInt32LE(v as number);
    else if (type === GV.I32) b.writeInt32LE(v as number);
    else if (type === GV.F32) b.writeFloatLE(v as number);
    else if (type === GV.BOOL) b.writeUInt8(v ? 1 : 0);
    else b.writeBigUInt64LE(BigInt(v as number));
    this.push(b);
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    if (n) this.push(Buffer.alloc(n));
  }
  buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const align = (n: number): number => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/** Writes a GGUF v3 file; returns its size in bytes. */
export function writeGguf(file: string, meta: ReadonlyMap<string, MetaValue>, tensors: readonly TensorPlan[]): number {
  const h = new Bytes();
  h.u32(0x46554747); // "GGUF"
  h.u32(3);
  h.u64(tensors.length);
  h.u64(meta.size);
  for (const [key, v] of meta) {
    h.string(key);
    h.u32(v.type);
    if (v.type === GV.ARRAY) {
      h.u32(v.of);
      h.u64(v.value.length);
      for (const x of v.value) h.scalar(v.of, x);
    } else h.scalar(v.type, v.value);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const size = byteSize(t.type, t.dims.reduce((a, b) => a * b, 1));
    sizes.push(size);
    h.string(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(t.type);
    h.u64(offset);
    offset = align(offset + size);
  }
  h.pad(ALIGNMENT);
  const fd = fs.openSync(file, 'w');
  try {
    let pos = 0;
    const put = (b: Uint8Array): void => {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done, pos + done);
      pos += b.length;
    };
    put(h.buffer());
    tensors.forEach((t, i) => {
      const b = t.data();
      if (b.length !== sizes[i]) throw new Error(`${t.name}: ${b.length} bytes, expected ${sizes[i]}`);
      put(b);
      const gap = align(b.length) - b.length;
      if (gap) put(new Uint8Array(gap));
    });
    return pos;
  } finally {
    fs.closeSync(fd);
  }
}

export interface GgufTensorInfo {
  readonly name: string;
  readonly dims: number[];
  readonly type: GgmlType;
  /** Absolute byte offset in the file. */
  readonly offset: number;
  readonly bytes: number;
}

export interface GgufFile {
  readonly version: number;
  readonly meta: Map<string, unknown>;
  readonly tensors: GgufTensorInfo[];
}

/** Parses a GGUF file's header, metadata and tensor table (reads the file's head only). */
export function readGguf(file: string): GgufFile {
  const fd = fs.openSync(file, 'r');
  let buf = Buffer.alloc(0);
  let at = 0;
  const need = (n: number): void => {
    if (at + n <= buf.length) return;
    const more = Buffer.alloc(Math.max(n, 1 << 22));
    const got = fs.readSync(fd, more, 0, more.length, buf.length);
    buf = Buffer.concat([buf, more.subarray(0, got)]);
    if (at + n > buf.length) throw new Error('truncated GGUF');
  };
  const rU32 = (): number => (need(4), (at += 4), buf.readUInt32LE(at - 4));
  const rU64 = (): number => (need(8), (at += 8), Number(buf.readBigUInt64LE(at - 8)));
  const rStr = (): string => {
    const n = rU64();
    need(n);
    at += n;
    return buf.toString('utf8', at - n, at);
  };
  const rScalar = (type: number): unknown => {
    switch (type) {
      case GV.U8: return (need(1), buf.readUInt8(at++));
      case GV.I8: return (need(1), buf.readInt8(at++));
      case GV.U16: return (need(2), (at += 2), buf.readUInt16LE(at - 2));
      case GV.I16: return (need(2), (at += 2), buf.readInt16LE(at - 2));
      case GV.U32: return rU32();
      case GV.I32: return (need(4), (at += 4), buf.readInt32LE(at - 4));
      case GV.F32: return (need(4), (at += 4), buf.readFloatLE(at - 4));
      case GV.BOOL: return (need(1), buf.readUInt8(at++) !== 0);
      case GV.STRING: return rStr();
      case GV.U64: return rU64();
      case GV.I64: return (need(8), (at += 8), Number(buf.readBigInt64LE(at - 8)));
      case GV.F64: return (need(8), (at += 8), buf.readDoubleLE(at - 8));
      default: throw new Error(`unknown GGUF value type ${type}`);
    }
  };
  try {
    if (rU32() !== 0x46554747) throw new Error('not a GGUF file');
    const version = rU32();
    const nTensors = rU64();
    const nKv = rU64();
    const meta = new Map<string, unknown>();
    for (let i = 0; i < nKv; i++) {
      const key = rStr();
      const type = rU32();
      if (type === GV.ARRAY) {
        const of = rU32();
        const n = rU64();
        const vals: unknown[] = new Array(n);
        for (let j = 0; j < n; j++) vals[j] = rScalar(of);
        meta.set(key, vals);
      } else meta.set(key, rScalar(type));
    }
    const raw: { name: string; dims: number[]; type: GgmlType; rel: number }[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = rStr();
      const nd = rU32();
      const dims = Array.from({ length: nd }, rU64);
      const type = rU32() as GgmlType;
      raw.push({ name, dims, type, rel: rU64() });
    }
    const alignment = (meta.get('general.alignment') as number | undefined) ?? ALIGNMENT;
    const dataStart = Math.ceil(at / alignment) * alignment;
    const tensors = raw.map((t) => ({ name: t.name, dims: t.dims, type: t.type, offset: dataStart + t.rel, bytes: byteSize(t.type, t.dims.reduce((a, b) => a * b, 1)) }));
    return { version, meta, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

/** The stored bytes of one tensor. */
export function readTensorBytes(file: string, t: GgufTensorInfo): Uint8Array {
  const b = Buffer.alloc(t.bytes);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, b, 0, t.bytes, t.offset);
  } finally {
    fs.closeSync(fd);
  }
  return b;
}
