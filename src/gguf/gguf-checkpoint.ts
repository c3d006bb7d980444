// A GGUF-backed checkpoint folder (gguf-view.ts on the gateway, or a worker's fetched stage holding
// raw GGUF blocks) opened as hearth's Checkpoint. Config and shapes come from the folder's json
// files and tensor table, so opening validates without decoding anything; the first read of a
// tensor decodes every tensor the folder holds, once, into <dir>/decoded/ (an ordinary safetensors
// folder: F16/BF16 kept as stored, everything else fp32, q/k rows back in HF order), which the
// graph builder then reads as it reads any checkpoint.
//
// Why decode to fp32 rather than keep blocks: fp32 is exact for every GGUF type (Q8_0, Q4_0 and the
// K-quants are small integers times fp16/fp32 scales), and hearth's own int4 build then re-derives
// Q4_0's blocks bit for bit at block 32 (its scale rule, max magnitude → -8, is Q4_0's; see
// test/gguf-formats.test.ts). The decoded folder's digest is derived from the GGUF's, so the shard
// cache keys on the GGUF without hashing the decoded bytes.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HearthError } from '../errors/index.ts';
import { parseConfig } from '../model/config.ts';
import { readSafetensorsHeader, SafetensorsWriter, type TensorSpec } from '../model/safetensors.ts';
import { LM_HEAD, tensorShapesForRange } from '../model/tensor-names.ts';
import type { Checkpoint, DType, ModelConfig, TensorInfo } from '../model/types.ts';
import type { CarriedBlocks, CarriedFormat, CarriedMatrix } from '../model/carried-blocks.ts';
import { writeSidecarDigests } from '../runtime/digest-sidecar.ts';
import { carriedFormatOf, carryRows } from './carry-blocks.ts';
import { dequantize } from './dequantize.ts';
import { ggmlByteSize, ggmlTypeOf } from './ggml-types.ts';
import { GGUF_MARKER, type GgufMarker, type GgufTableEntry } from './gguf-view.ts';

export const DECODED_DIR = 'decoded';
const DECODED_MARKER = 'hearth-decoded.json';
/** Raw GGUF blocks carried in a stage's safetensors file are typed `GGUF_<ggml type>`. */
export const GGUF_DTYPE_PREFIX = 'GGUF_';
const JSON_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'];
/** fp32 values decoded per write (64 MB). */
const CHUNK_VALUES = 16 << 20;

type OpenFolder = (dir: string, opts: { range?: readonly [number, number] }) => Checkpoint;

export function isGgufFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, GGUF_MARKER));
}

let versionMemo: string | null = null;
/** The decoder's own source: a change to how blocks decode never meets a folder decoded before. */
function decoderVersion(): string {
  if (versionMemo !== null) return versionMemo;
  const h = createHash('sha256');
  for (const f of ['dequantize.ts', 'gguf-checkpoint.ts', 'carry-blocks.ts']) {
    try {
      h.update(fs.readFileSync(fileURLToPath(new URL(f, import.meta.url))));
    } catch {
      h.update(`unversioned ${process.pid} ${Math.random()}`);
    }
  }
  versionMemo = h.digest('hex').slice(0, 16);
  return versionMemo;
}

function readMarker(dir: string): GgufMarker {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, GGUF_MARKER), 'utf8')) as GgufMarker;
  } catch (e) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [path.join(dir, GGUF_MARKER), (e as Error).message]);
  }
}

/**
 * The folder's tensors: the marker's table when the GGUF it names is here (the gateway's view), else
 * the stage file's raw `GGUF_*` entries (a worker's fetched stage), with the marker's un-permute info.
 */
function tensorTable(dir: string, marker: GgufMarker): { table: Map<string, GgufTableEntry>; digest: string } {
  const files = new Set(marker.tensors.map((t) => t.file));
  if ([...files].every((f) => fs.existsSync(path.join(dir, f)))) {
    return { table: new Map(marker.tensors.map((t) => [t.name, t])), digest: marker.digest };
  }
  const stageFile = path.join(dir, 'model.safetensors');
  if (!fs.existsSync(stageFile)) throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [`${dir} (neither the GGUF nor a fetched stage is here)`]);
  const header = readSafetensorsHeader(stageFile, 'model.safetensors');
  const perm = new Map(marker.tensors.map((t) => [t.name, t.unpermute]));
  const table = new Map<string, GgufTableEntry>();
  for (const e of header.tensors.values()) {
    if (!e.dtype.startsWith(GGUF_DTYPE_PREFIX)) throw new HearthError('HEARTH_ERR_TENSOR_DTYPE', ['model.safetensors', e.name, e.dtype]);
    table.set(e.name, {
      name: e.name, type: e.dtype.slice(GGUF_DTYPE_PREFIX.length), shape: e.shape, file: 'model.safetensors',
      byteStart: e.byteStart, byteEnd: e.byteEnd, unpermute: perm.get(e.name) ?? null,
    });
  }
  // The stage's own digest, as its fetch verified and recorded it.
  let digest: string;
  try {
    const stage = JSON.parse(fs.readFileSync(path.join(dir, 'hearth-stage.json'), 'utf8')) as { files?: Record<string, { sha256?: string }> };
    digest = stage.files?.['model.safetensors']?.sha256 ?? '';
  } catch {
    digest = '';
  }
  if (digest === '') digest = createHash('sha256').update(fs.readFileSync(stageFile)).digest('hex');
  return { table, digest };
}

function readRange(fd: number, start: number, len: number): Buffer {
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, start + got);
    if (n <= 0) throw new Error(`unexpected end of file at byte ${start + got}`);
    got += n;
  }
  return buf;
}

/** HF row h·D + s·D/2 + r ← GGUF row h·D + 2r + s (the inverse of convert_hf_to_gguf's permute). */
function unpermuteRows(w: Float32Array, heads: number, cols: number): Float32Array {
  const d = w.length / cols / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let r = 0; r < d / 2; r++)
      for (let s = 0; s < 2; s++) {
        const from = (h * d + 2 * r + s) * cols;
        out.set(w.subarray(from, from + cols), (h * d + s * (d / 2) + r) * cols);
      }
  return out;
}

/** unpermuteRows for whole rows of raw bytes (blocks never cross rows). */
function unpermuteRawRows(raw: Uint8Array, heads: number, rowBytes: number): Uint8Array {
  const rows = raw.length / rowBytes;
  const d = rows / heads;
  const out = new Uint8Array(raw.length);
  for (let h = 0; h < heads; h++)
    for (let r = 0; r < d / 2; r++)
      for (let s = 0; s < 2; s++) {
        const from = (h * d + 2 * r + s) * rowBytes;
        out.set(raw.subarray(from, from + rowBytes), (h * d + s * (d / 2) + r) * rowBytes);
      }
  return out;
}

/**
 * Whether a GGUF's quantized tensors are built in their own format (carried: int4 builds, the
 * default) or requantized from their fp32 values like any checkpoint (HEARTH_GGUF_REQUANTIZE=1:
 * smaller for 5-8-bit files, int4 at HEARTH_INT4_BLOCK, at the accuracy docs/gguf.md measures).
 */
export function ggufCarryBlocks(): boolean {
  return process.env['HEARTH_GGUF_REQUANTIZE'] !== '1';
}

function tryRename(from: string, to: string): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return false;
    throw e;
  }
}

function decodedKey(out: string): string | null {
  try {
    return (JSON.parse(fs.readFileSync(path.join(out, DECODED_MARKER), 'utf8')) as { key?: string }).key ?? null;
  } catch {
    return null;
  }
}

/** Writes <dir>/decoded/ (atomically) unless a complete one for the same source is there. */
function ensureDecoded(dir: string, table: ReadonlyMap<string, GgufTableEntry>, srcDigest: string): string {
  const out = path.join(dir, DECODED_DIR);
  // The carry mode is in the key: its digest is what the built-shard cache keys on, and a shard
  // built from carried blocks must not be reused when requantizing (or the reverse).
  const mode = ggufCarryBlocks() ? 'carry' : 'requantize';
  const key = createHash('sha256').update(`hearth gguf decode\0${decoderVersion()}\0${srcDigest}\0${[...table.keys()].sort().join(',')}\0${mode}`).digest('hex');
  if (decodedKey(out) === key) return out;
  const tmp = `${out}.partial-${process.pid}-${Math.random().toString(36).slice(2)}`;
  fs.mkdirSync(tmp, { recursive: true });
  try {
    for (const f of JSON_FILES) if (fs.existsSync(path.join(dir, f))) fs.copyFileSync(path.join(dir, f), path.join(tmp, f));
    const entries = [...table.values()];
    const dtypeOf = (t: GgufTableEntry): DType => (t.type === 'F16' || t.type === 'BF16' ? t.type : 'F32');
    const specs: TensorSpec[] = entries.map((t) => ({ name: t.name, dtype: dtypeOf(t), shape: t.shape }));
    const writer = new SafetensorsWriter(path.join(tmp, 'model.safetensors'), specs, { format: 'pt', 'hearth.gguf': srcDigest });
    const fds = new Map<string, number>();
    try {
      for (const t of entries) {
        const type = ggmlTypeOf(t.type);
        const cols = t.shape[t.shape.length - 1] ?? 1;
        const rows = t.shape.length > 1 ? t.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
        const rowBytes = type === null ? null : ggmlByteSize(type, cols);
        if (type === null || rowBytes === null || rowBytes * rows !== t.byteEnd - t.byteStart) {
          throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [t.file, `tensor ${t.name}: ${t.type} [${t.shape.join(',')}] over ${t.byteEnd - t.byteStart} bytes`]);
        }
        let fd = fds.get(t.file);
        if (fd === undefined) {
          fd = fs.openSync(path.join(dir, t.file), 'r');
          fds.set(t.file, fd);
        }
        // q/k are un-permuted whole (a few MB); everything else streams in row chunks.
        const step = t.unpermute !== null ? rows : Math.max(1, Math.floor(CHUNK_VALUES / cols));
        for (let r = 0; r < rows; r += step) {
          const n = Math.min(step, rows - r);
          const vals = new Float32Array(n * cols);
          dequantize(type, readRange(fd, t.byteStart + r * rowBytes, n * rowBytes), n * cols, vals);
          writer.writePart(t.name, t.unpermute !== null ? unpermuteRows(vals, t.unpermute, cols) : vals);
        }
      }
      writer.close();
    } finally {
      for (const fd of fds.values()) fs.closeSync(fd);
    }
    // Digest derived from the source's: the shard cache keys on the GGUF (or stage) digest.
    writeSidecarDigests(tmp, { 'model.safetensors': key });
    fs.writeFileSync(path.join(tmp, DECODED_MARKER), JSON.stringify({ key, source: srcDigest }));
    // Stages of one process (or several processes) may decode the same folder at once: the first
    // rename wins and the others use its result; an out-of-date folder is moved aside first, never
    // removed in place under a reader.
    if (!tryRename(tmp, out)) {
      if (decodedKey(out) !== key) {
        const stale = `${out}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
        if (tryRename(out, stale)) fs.rmSync(stale, { recursive: true, force: true });
        if (!tryRename(tmp, out) && decodedKey(out) !== key) throw new Error(`${out}: could not put the decoded tensors in place`);
      }
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return out;
}

class GgufCheckpoint implements Checkpoint, CarriedBlocks {
  #inner: Checkpoint | null = null;

  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    private readonly table: ReadonlyMap<string, GgufTableEntry>,
    private readonly digest: string,
    private readonly range: readonly [number, number],
    private readonly openFolder: OpenFolder,
  ) {}

  /** The decoded folder, opened (decoding it first if needed). */
  #decoded(): Checkpoint {
    this.#inner ??= this.openFolder(ensureDecoded(this.dir, this.table, this.digest), { range: this.range });
    return this.#inner;
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  info(name: string): TensorInfo {
    if (!this.table.has(name)) throw new HearthError('HEARTH_ERR_TENSOR_MISSING', [GGUF_MARKER, name]);
    return this.#decoded().info(name);
  }

  read(name: string): Float32Array {
    return this.#decoded().read(name);
  }

  tensorsForRange(start: number, end: number): string[] {
    return tensorShapesForRange(this.config, start, end).map(([n]) => n);
  }

  carrying(): boolean {
    return ggufCarryBlocks();
  }

  carriedFormat(name: string): CarriedFormat | null {
    const t = this.table.get(name);
    if (t === undefined || !ggufCarryBlocks()) return null;
    const type = ggmlTypeOf(t.type);
    return type === null ? null : carriedFormatOf(type);
  }

  carried(name: string, range?: readonly [number, number]): CarriedMatrix | null {
    if (this.carriedFormat(name) === null) return null;
    const t = this.table.get(name) as GgufTableEntry;
    const type = ggmlTypeOf(t.type) as number;
    const cols = t.shape[t.shape.length - 1] ?? 1;
    const rows = t.shape.length > 1 ? t.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
    const rowBytes = ggmlByteSize(type, cols);
    if (rowBytes === null || rowBytes * rows !== t.byteEnd - t.byteStart) {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [t.file, `tensor ${name}: ${t.type} [${t.shape.join(',')}] over ${t.byteEnd - t.byteStart} bytes`]);
    }
    const [r0, r1] = range ?? [0, rows];
    const fd = fs.openSync(path.join(this.dir, t.file), 'r');
    try {
      // q/k rows are put back in HF order whole (the builder never asks for part of them).
      if (t.unpermute !== null) {
        const all = unpermuteRawRows(readRange(fd, t.byteStart, rows * rowBytes), t.unpermute, rowBytes);
        return carryRows(type, all.subarray(r0 * rowBytes, r1 * rowBytes), r1 - r0, cols);
      }
      return carryRows(type, readRange(fd, t.byteStart + r0 * rowBytes, (r1 - r0) * rowBytes), r1 - r0, cols);
    } finally {
      fs.closeSync(fd);
    }
  }

  close(): void {
    this.#inner?.close();
    this.#inner = null;
  }
}

/** Opens a GGUF-backed folder; validates the range's tensors by the table's shapes. */
export function openGgufFolder(dir: string, opts: { range?: readonly [number, number] }, openFolder: OpenFolder): Checkpoint {
  const marker = readMarker(dir);
  const { table, digest } = tensorTable(dir, marker);
  const text = (f: string): string | null => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), 'utf8') : null);
  const cfgText = text('config.json');
  if (cfgText === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [dir]);
  const config = parseConfig(cfgText, text('generation_config.json'), { hasLmHead: table.has(LM_HEAD) });
  const [start, end] = opts.range ?? [0, config.numLayers];
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= config.numLayers)) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', ['config.json', `layer range [${start}, ${end}) is outside the model's ${config.numLayers} layers`]);
  }
  for (const [name, shape] of tensorShapesForRange(config, start, end)) {
    const t = table.get(name);
    if (t === undefined) throw new HearthError('HEARTH_ERR_TENSOR_MISSING', [marker.source, name]);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new HearthError('HEARTH_ERR_TENSOR_SHAPE', [marker.source, name, `[${t.shape.join(',')}]`, `[${shape.join(',')}]`]);
    }
  }
  return new GgufCheckpoint(dir, config, table, digest, [start, end], openFolder);
}
