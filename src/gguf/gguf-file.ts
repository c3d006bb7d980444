// Opens a local GGUF file, or a split set (`NAME-00001-of-0000N.gguf`, as llama.cpp's gguf-split
// writes it: every shard a whole GGUF with its own header, the tensors spread over them), through
// @huggingface/gguf (header, metadata, tensor infos). What comes out is plain data: metadata
// values by key and, per tensor, its ggml type, dims and absolute byte range in its file.

import fs from 'node:fs';
import path from 'node:path';
import { gguf, GGUFValueType, type GGUFParseOutput } from '@huggingface/gguf';
import { HearthError } from '../errors/index.ts';
import { ggmlByteSize, ggmlTypeName } from './ggml-types.ts';

export type GgufValue = string | number | bigint | boolean | readonly GgufValue[];

export interface GgufTensor {
  readonly name: string;
  /** ggml type id (ggml-types.ts). */
  readonly type: number;
  /** ggml order: dims[0] is the innermost (a row's length); HF shape is the reverse. */
  readonly dims: readonly number[];
  /** Absolute path of the (shard) file holding it. */
  readonly file: string;
  readonly byteStart: number;
  /** End exclusive; null when hearth does not know the type's size (checked when decoded). */
  readonly byteEnd: number | null;
}

export interface GgufModel {
  /** The files of the set, first shard first. */
  readonly files: readonly string[];
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: ReadonlyMap<string, GgufTensor>;
}

const SHARD_RE = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

/** The shard files of a split set named by any of its shards (or the file alone). */
export function ggufSetFiles(file: string): string[] {
  const abs = path.resolve(file);
  const m = SHARD_RE.exec(abs);
  if (m === null) return [abs];
  const total = Number(m[3]);
  const out: string[] = [];
  for (let i = 1; i <= total; i++) out.push(`${m[1]}-${String(i).padStart(5, '0')}-of-${m[3]}.gguf`);
  const missing = out.filter((f) => !fs.existsSync(f));
  if (missing.length > 0) throw new HearthError('HEARTH_ERR_GGUF_NOT_FOUND', [`${missing[0]} (${missing.length} of the ${total} shards of the split set ${path.basename(abs)} are missing)`]);
  return out;
}

function plain(v: unknown): GgufValue {
  if (Array.isArray(v)) return v.map(plain);
  return v as GgufValue;
}

async function parseOne(file: string): Promise<GGUFParseOutput> {
  try {
    return await gguf(file, { allowLocalFile: true });
  } catch (e) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, `not a GGUF file hearth can read (${(e as Error).message})`], { cause: e });
  }
}

export async function openGguf(file: string): Promise<GgufModel> {
  const files = ggufSetFiles(file);
  const metadata = new Map<string, GgufValue>();
  const tensors = new Map<string, GgufTensor>();
  for (const f of files) {
    const size = fs.statSync(f).size;
    const parsed = await parseOne(f);
    if (!parsed.littleEndian) throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [f, 'a big-endian GGUF (hearth reads little-endian files)']);
    for (const [k, v] of Object.entries(parsed.metadata)) {
      // Shard bookkeeping (split.*) differs per shard; the model's own keys come from the first.
      if (!metadata.has(k)) metadata.set(k, plain(v));
    }
    const base = Number(parsed.tensorDataOffset);
    for (const t of parsed.tensorInfos) {
      const dims = t.shape.map(Number);
      const n = dims.reduce((a, b) => a * b, 1);
      const bytes = ggmlByteSize(t.dtype, n);
      const byteStart = base + Number(t.offset);
      const byteEnd = bytes === null ? null : byteStart + bytes;
      if (byteEnd !== null && byteEnd > size) {
        throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [f, `tensor ${t.name} (${ggmlTypeName(t.dtype)} [${dims.join(',')}]) ends at byte ${byteEnd} but the file has ${size} (truncated?)`]);
      }
      if (tensors.has(t.name)) throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [f, `tensor ${t.name} appears in two shards`]);
      tensors.set(t.name, { name: t.name, type: t.dtype, dims, file: f, byteStart, byteEnd });
    }
  }
  return { files, metadata, tensors };
}

/** A metadata number (u8…u64, i8…i64, f32, f64), or undefined. */
export function metaNumber(meta: ReadonlyMap<string, GgufValue>, key: string): number | undefined {
  const v = meta.get(key);
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
}

export function metaString(meta: ReadonlyMap<string, GgufValue>, key: string): string | undefined {
  const v = meta.get(key);
  return typeof v === 'string' ? v : undefined;
}

export { GGUFValueType };
