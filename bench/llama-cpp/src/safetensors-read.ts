// A minimal safetensors reader (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header of {name: {dtype, shape, data_offsets}}, then the data. Kept here
// rather than imported from hearth so this folder stays independent of hearth's sources.

import fs from 'node:fs';
import path from 'node:path';

export interface TensorRef {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute byte offset of the data in file. */
  readonly offset: number;
  readonly bytes: number;
}

function readHeader(file: string): TensorRef[] {
  const fd = fs.openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    return Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, file, offset: 8 + n + t.data_offsets[0], bytes: t.data_offsets[1] - t.data_offsets[0] }));
  } finally {
    fs.closeSync(fd);
  }
}

/** Every tensor of a checkpoint folder (model.safetensors, or the shards its index names). */
export function listTensors(dir: string): Map<string, TensorRef> {
  const index = path.join(dir, 'model.safetensors.index.json');
  const files = fs.existsSync(index)
    ? [...new Set(Object.values((JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map))]
    : ['model.safetensors'];
  const out = new Map<string, TensorRef>();
  for (const f of files) for (const t of readHeader(path.join(dir, f))) out.set(t.name, t);
  return out;
}

/** A tensor's values widened to f32 (F32, F16 and BF16 checkpoints). */
export function readF32(t: TensorRef): Float32Array {
  const buf = Buffer.alloc(t.bytes);
  const fd = fs.openSync(t.file, 'r');
  try {
    let done = 0;
    while (done < t.bytes) done += fs.readSync(fd, buf, done, Math.min(t.bytes - done, 1 << 30), t.offset + done);
  } finally {
    fs.closeSync(fd);
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (t.dtype === 'F32') return new Float32Array(buf.buffer, buf.byteOffset, count).slice();
  const out = new Float32Array(count);
  if (t.dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u[i] = buf.readUInt16LE(i * 2) << 16;
    return out;
  }
  if (t.dtype === 'F16') {
    for (let i = 0; i < count; i++) {
      const h = buf.readUInt16LE(i * 2);
      const e = (h >>> 10) & 0x1f;
      const m = h & 0x3ff;
      const s = h & 0x8000 ? -1 : 1;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
    return out;
  }
  throw new Error(`${t.name}: dtype ${t.dtype} is not supported (F32, F16, BF16)`);
}
