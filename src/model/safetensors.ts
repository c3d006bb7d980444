// The safetensors format (huggingface/safetensors, docs "Format"): 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [start, end]}, __metadata__?},
// then the data; offsets are relative to byte 8 + N. Reading goes through fs.readSync on byte
// ranges so a multi-GB file never has to fit in the JS heap (or under Buffer's 2 GB limits).

import fs from 'node:fs';
import { HearthError } from '../errors/index.ts';
import { DTYPES, type DType } from './types.ts';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { F32: 4, F16: 2, BF16: 2 };

/** One header entry as stored; dtype may be one hearth does not read (checked when used). */
export interface RawTensorEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly byteStart: number;
  readonly byteEnd: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  readonly dataStart: number;
  readonly tensors: ReadonlyMap<string, RawTensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

function corrupt(display: string, msg: string): never {
  throw new HearthError('HEARTH_ERR_SAFETENSORS_CORRUPT', [display, msg]);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function isSupportedDType(d: string): d is DType {
  return (DTYPES as readonly string[]).includes(d);
}

/** Reads exactly `target.byteLength` bytes at `position`, in chunks (readSync caps one call at 2 GB). */
export function readFully(fd: number, target: Uint8Array, position: number): number {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < target.byteLength) {
    const len = Math.min(CHUNK, target.byteLength - done);
    const n = fs.readSync(fd, target, done, len, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Parses a safetensors header: valid JSON, well-formed entries. Data ranges are checked per tensor
 * by checkEntry. `display` names the file in errors.
 */
export function readSafetensorsHeader(file: string, display: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    corrupt(display, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) corrupt(display, `file is ${fileSize} bytes, too short for a safetensors header`);
    const lenBuf = new Uint8Array(8);
    readFully(fd, lenBuf, 0);
    const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (headerLen > fileSize - 8) corrupt(display, `header length ${headerLen} runs past the end of the file (${fileSize} bytes)`);
    // 100 MB: the format's own cap on header size.
    if (headerLen > 100_000_000) corrupt(display, `header length ${headerLen} exceeds 100 MB`);
    const headerBuf = new Uint8Array(headerLen);
    readFully(fd, headerBuf, 8);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBuf));
    } catch (e) {
      corrupt(display, `header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) corrupt(display, 'header is not a JSON object');
    const dataStart = 8 + headerLen;
    const tensors = new Map<string, RawTensorEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof v === 'object' && v !== null) metadata = v as Record<string, string>;
        continue;
      }
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
      const shape = e?.shape;
      const offs = e?.data_offsets;
      if (
        typeof e?.dtype !== 'string' ||
        !Array.isArray(shape) ||
        !shape.every((d) => Number.isInteger(d) && d >= 0) ||
        !Array.isArray(offs) ||
        offs.length !== 2 ||
        !offs.every((d) => Number.isInteger(d) && d >= 0) ||
        offs[1] < offs[0]
      ) {
        corrupt(display, `tensor ${name} has a malformed header entry ${JSON.stringify(v)}`);
      }
      const [s, end] = offs as [number, number];
      tensors.set(name, { name, dtype: e.dtype, shape: shape as number[], byteStart: dataStart + s, byteEnd: dataStart + end });
    }
    return { file, fileSize, dataStart, tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks one entry's data: a dtype hearth reads, a byte span equal to shape × dtype size, and data
 * inside the file. Done per tensor (not per header) so a stage checks only the tensors it uses.
 */
export function checkEntry(header: SafetensorsHeader, entry: RawTensorEntry, display: string): DType {
  const { dtype, name } = entry;
  if (!isSupportedDType(dtype)) throw new HearthError('HEARTH_ERR_TENSOR_DTYPE', [display, name, dtype]);
  const need = numel(entry.shape) * DTYPE_BYTES[dtype];
  const span = entry.byteEnd - entry.byteStart;
  if (span !== need) corrupt(display, `tensor ${name} spans ${span} bytes but shape [${entry.shape.join(',')}] of ${dtype} needs ${need}`);
  if (entry.byteEnd > header.fileSize) {
    corrupt(display, `tensor ${name} data ends at byte ${entry.byteEnd} but the file has only ${header.fileSize} bytes (truncated?)`);
  }
  return dtype;
}

// --- dtype conversion ----------------------------------------------------------------------

let f16Table: Float32Array | null = null;

/** IEEE 754 binary16 → binary32 for all 65536 bit patterns (256 KB, built once). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** Converts raw little-endian bytes of `dtype` to a fresh fp32 array. */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  if (dtype === 'F32') {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    return new Float32Array(bytes.slice().buffer);
  }
  const src = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(bytes.slice().buffer);
  const out = new Float32Array(n);
  if (dtype === 'F16') {
    const t = halfTable();
    for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = src[i]! << 16;
  }
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** fp32 → bf16 bits, round to nearest even (as torch does). */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return (u >>> 16) | 0x40; // keep NaN a NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** fp32 → IEEE binary16 bits, round to nearest even, with subnormals and overflow to Inf. */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  const rem = mant & 0x1fff;
  mant >>>= 13;
  if (rem > 0x1000 || (rem === 0x1000 && mant & 1)) {
    mant++;
    if (mant === 0x400) {
      mant = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | mant;
}

/** fp32 values → little-endian bytes of `dtype` (a view of `data` for F32, else a fresh buffer). */
export function fromFloat32(data: Float32Array, dtype: DType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const conv = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < data.length; i++) out[i] = conv(data[i]!);
  return new Uint8Array(out.buffer);
}

// --- writing -------------------------------------------------------------------------------

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/**
 * Streams one safetensors file: the header is computed up front from the specs, then each tensor
 * is appended in spec order, so a writer never holds more than one tensor in memory.
 */
export class SafetensorsWriter {
  readonly #fd: number;
  readonly #specs: readonly TensorSpec[];
  #next = 0;

  constructor(file: string, specs: readonly TensorSpec[], metadata: Record<string, string> = { format: 'pt' }) {
    this.#specs = specs;
    const header: Record<string, unknown> = { __metadata__: metadata };
    let off = 0;
    for (const s of specs) {
      const bytes = numel(s.shape) * DTYPE_BYTES[s.dtype];
      header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [off, off + bytes] };
      off += bytes;
    }
    let json = JSON.stringify(header);
    // Pad with spaces so the data starts 8-byte aligned, as the reference implementation does.
    json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
    const hb = Buffer.from(json, 'utf8');
    const lb = Buffer.alloc(8);
    lb.writeBigUInt64LE(BigInt(hb.length));
    this.#fd = fs.openSync(file, 'w');
    fs.writeSync(this.#fd, lb);
    fs.writeSync(this.#fd, hb);
  }

  /** Appends the next tensor (must be the next spec in order), converting from fp32. */
  write(name: string, data: Float32Array): void {
    const spec = this.#specs[this.#next];
    if (!spec || spec.name !== name) throw new Error(`SafetensorsWriter: expected ${spec?.name ?? 'no more tensors'}, got ${name}`);
    if (data.length !== numel(spec.shape)) throw new Error(`SafetensorsWriter: ${name} has ${data.length} values, shape needs ${numel(spec.shape)}`);
    const bytes = fromFloat32(data, spec.dtype);
    let done = 0;
    while (done < bytes.byteLength) done += fs.writeSync(this.#fd, bytes, done, bytes.byteLength - done);
    this.#next++;
  }

  #partial = 0;

  /**
   * Appends part of the next tensor (parts in order, fp32 converted): a tensor larger than memory
   * should hold is written in pieces. The tensor is complete once its numel values have come.
   */
  writePart(name: string, data: Float32Array): void {
    const spec = this.#specs[this.#next];
    if (!spec || spec.name !== name) throw new Error(`SafetensorsWriter: expected ${spec?.name ?? 'no more tensors'}, got ${name}`);
    const total = numel(spec.shape);
    if (this.#partial + data.length > total) throw new Error(`SafetensorsWriter: ${name} got more than the ${total} values its shape needs`);
    const bytes = fromFloat32(data, spec.dtype);
    let done = 0;
    while (done < bytes.byteLength) done += fs.writeSync(this.#fd, bytes, done, bytes.byteLength - done);
    this.#partial += data.length;
    if (this.#partial === total) {
      this.#partial = 0;
      this.#next++;
    }
  }

  close(): void {
    if (this.#next !== this.#specs.length) {
      fs.closeSync(this.#fd);
      throw new Error(`SafetensorsWriter: closed after ${this.#next} of ${this.#specs.length} tensors`);
    }
    fs.closeSync(this.#fd);
  }
}
