// Reads only the header of a .safetensors file (8-byte little-endian length N, then N bytes of JSON),
// so serving or listing a checkpoint never pages its weights in.
// Format: https://github.com/huggingface/safetensors#format
import { open } from 'node:fs/promises';

import { HearthError } from '../errors/index.ts';

export interface SafetensorsEntry {
  readonly name: string;
  /** As stored: F32, F16, BF16, I64, … (callers that compute check support themselves). */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offsets inside the file, end exclusive. */
  readonly byteStart: number;
  readonly byteEnd: number;
}

export interface SafetensorsHeader {
  /** Absolute offset where tensor data starts (8 + N). */
  readonly dataStart: number;
  readonly fileSize: number;
  /** In file order (by byteStart). */
  readonly tensors: readonly SafetensorsEntry[];
  readonly metadata: Readonly<Record<string, string>> | null;
}

/** Headers above this are refused: the reference implementation caps them at 100 MB too. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await open(file, 'r').catch((e: unknown) => {
    throw new HearthError('HEARTH_ERR_SAFETENSORS_CORRUPT', [file, `cannot open: ${(e as Error).message}`], { cause: e });
  });
  try {
    const { size: fileSize } = await fh.stat();
    const corrupt = (why: string): HearthError => new HearthError('HEARTH_ERR_SAFETENSORS_CORRUPT', [file, why]);
    if (fileSize < 8) throw corrupt(`file is ${fileSize} bytes, too short for a safetensors header`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n > MAX_HEADER_BYTES || 8 + n > fileSize) throw corrupt(`header length ${n} does not fit in a ${fileSize}-byte file`);
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    return parseHeaderJson(json.toString('utf8'), 8 + n, fileSize, corrupt);
  } finally {
    await fh.close();
  }
}

function parseHeaderJson(text: string, dataStart: number, fileSize: number, corrupt: (why: string) => HearthError): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw corrupt(`header is not JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw corrupt('header is not a JSON object');
  let metadata: Record<string, string> | null = null;
  const tensors: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const offs = e.data_offsets;
    if (typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(offs) || offs.length !== 2) {
      throw corrupt(`tensor ${name} has a malformed header entry`);
    }
    const [b, en] = offs as [unknown, unknown];
    if (typeof b !== 'number' || typeof en !== 'number' || b < 0 || en < b || dataStart + en > fileSize) {
      throw corrupt(`tensor ${name} has data_offsets [${String(b)}, ${String(en)}] beyond the file (truncated?)`);
    }
    tensors.push({ name, dtype: e.dtype, shape: (e.shape as number[]).slice(), byteStart: dataStart + b, byteEnd: dataStart + en });
  }
  tensors.sort((a, b) => a.byteStart - b.byteStart);
  return { dataStart, fileSize, tensors, metadata };
}
