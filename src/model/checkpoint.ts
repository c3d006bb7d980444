// Opens a Hugging Face checkpoint folder: config.json (+ generation_config.json), one
// model.safetensors or shards named by model.safetensors.index.json. Validation uses headers only
// and covers just the tensors the requested layer range needs, so a worker holding a partial folder
// (its own layers' tensors in one model.safetensors, plus the json files) opens it too.

import fs from 'node:fs';
import path from 'node:path';
import { HearthError } from '../errors/index.ts';
import { parseConfig } from './config.ts';
import { checkEntry, readFully, readSafetensorsHeader, toFloat32, DTYPE_BYTES, type RawTensorEntry, type SafetensorsHeader } from './safetensors.ts';
import { LM_HEAD, tensorShapesForRange } from './tensor-names.ts';
import { isGgufFolder, openGgufFolder } from '../gguf/gguf-checkpoint.ts';
import type { Checkpoint, ModelConfig, TensorInfo } from './types.ts';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface OpenCheckpointOptions {
  /** Layer range [start, end) this process will run; only its tensors are validated. Default: all layers. */
  readonly range?: readonly [number, number];
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Where each tensor lives: the index's weight_map plus any un-indexed .safetensors files. */
class TensorLocator {
  readonly #dir: string;
  readonly #weightMap: ReadonlyMap<string, string> | null;
  /** .safetensors files not reached through the index (model.safetensors of a single-file or partial folder). */
  readonly #loose: readonly string[];
  readonly #headers = new Map<string, SafetensorsHeader>();

  constructor(dir: string) {
    this.#dir = dir;
    const indexText = readText(path.join(dir, INDEX_FILE));
    let map: Map<string, string> | null = null;
    if (indexText !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(indexText);
      } catch (e) {
        throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [INDEX_FILE, `not valid JSON (${(e as Error).message})`]);
      }
      const wm = (parsed as { weight_map?: unknown } | null)?.weight_map;
      if (typeof wm !== 'object' || wm === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [INDEX_FILE, 'has no weight_map object']);
      map = new Map(Object.entries(wm as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'));
    }
    this.#weightMap = map;
    const indexed = new Set(map?.values() ?? []);
    let files: string[] = [];
    try {
      files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') && !indexed.has(f)).sort();
    } catch {
      files = [];
    }
    // model.safetensors first: it is the conventional single file and the one a partial folder holds.
    this.#loose = files.sort((a, b) => Number(b === SINGLE_FILE) - Number(a === SINGLE_FILE));
    if (map === null && this.#loose.length === 0) {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [dir]);
    }
  }

  header(file: string): SafetensorsHeader {
    let h = this.#headers.get(file);
    if (!h) {
      h = readSafetensorsHeader(path.join(this.#dir, file), file);
      this.#headers.set(file, h);
    }
    return h;
  }

  /** The file a missing tensor is reported against. */
  get primaryName(): string {
    return this.#loose[0] ?? INDEX_FILE;
  }

  has(name: string): boolean {
    if (this.#weightMap?.has(name)) return true;
    return this.#loose.some((f) => this.header(f).tensors.has(name));
  }

  /** The file and header entry for `name`, or null when no file holds it. */
  locate(name: string): { file: string; header: SafetensorsHeader; entry: RawTensorEntry } | null {
    const mapped = this.#weightMap?.get(name);
    if (mapped !== undefined && fs.existsSync(path.join(this.#dir, mapped))) {
      const header = this.header(mapped);
      const entry = header.tensors.get(name);
      if (!entry) throw new HearthError('HEARTH_ERR_TENSOR_MISSING', [mapped, `${name} (listed in ${INDEX_FILE})`]);
      return { file: mapped, header, entry };
    }
    for (const f of this.#loose) {
      const header = this.header(f);
      const entry = header.tensors.get(name);
      if (entry) return { file: f, header, entry };
    }
    if (mapped !== undefined) {
      // The index names a shard this folder does not have (a partial folder) and no loose file has it.
      throw new HearthError('HEARTH_ERR_TENSOR_MISSING', [mapped, `${name} (file not present)`]);
    }
    return null;
  }

  names(): string[] {
    const out = new Set<string>(this.#weightMap?.keys() ?? []);
    for (const f of this.#loose) for (const n of this.header(f).tensors.keys()) out.add(n);
    return [...out];
  }
}

class FolderCheckpoint implements Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly #locator: TensorLocator;
  readonly #fds = new Map<string, number>();
  readonly #infos = new Map<string, TensorInfo>();

  constructor(dir: string, config: ModelConfig, locator: TensorLocator) {
    this.dir = dir;
    this.config = config;
    this.#locator = locator;
  }

  has(name: string): boolean {
    return this.#locator.has(name);
  }

  info(name: string): TensorInfo {
    const cached = this.#infos.get(name);
    if (cached) return cached;
    const loc = this.#locator.locate(name);
    if (!loc) throw new HearthError('HEARTH_ERR_TENSOR_MISSING', [this.#locator.primaryName, name]);
    const dtype = checkEntry(loc.header, loc.entry, loc.file);
    const info: TensorInfo = Object.freeze({
      name,
      dtype,
      shape: Object.freeze([...loc.entry.shape]),
      file: path.join(this.dir, loc.file),
      byteStart: loc.entry.byteStart,
      byteEnd: loc.entry.byteEnd,
    });
    this.#infos.set(name, info);
    return info;
  }

  /** Checks presence and shape; the error names the file and the tensor. */
  expect(name: string, shape: readonly number[]): void {
    const info = this.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new HearthError('HEARTH_ERR_TENSOR_SHAPE', [path.relative(this.dir, info.file), name, `[${info.shape.join(',')}]`, `[${shape.join(',')}]`]);
    }
  }

  read(name: string): Float32Array {
    const info = this.info(name);
    let fd = this.#fds.get(info.file);
    if (fd === undefined) {
      fd = fs.openSync(info.file, 'r');
      this.#fds.set(info.file, fd);
    }
    const bytes = info.byteEnd - info.byteStart;
    const n = bytes / DTYPE_BYTES[info.dtype];
    // fp32: read straight into the result's memory; others: read raw then widen.
    const out = info.dtype === 'F32' ? new Float32Array(n) : null;
    const raw = out ? new Uint8Array(out.buffer) : new Uint8Array(bytes);
    const got = readFully(fd, raw, info.byteStart);
    if (got !== bytes) {
      throw new HearthError('HEARTH_ERR_SAFETENSORS_CORRUPT', [path.relative(this.dir, info.file), `tensor ${name}: read ${got} of ${bytes} bytes (file truncated?)`]);
    }
    return out ?? toFloat32(raw, info.dtype);
  }

  tensorsForRange(start: number, end: number): string[] {
    return tensorShapesForRange(this.config, start, end).map(([name]) => name);
  }

  /** Every tensor name the folder lists (all files). */
  allNames(): string[] {
    return this.#locator.names();
  }

  close(): void {
    for (const fd of this.#fds.values()) fs.closeSync(fd);
    this.#fds.clear();
  }
}

/** Opens and validates (headers only) a checkpoint folder. Throws HearthError with a one-line message. */
export function openCheckpoint(dir: string, opts: OpenCheckpointOptions = {}): Checkpoint {
  const abs = path.resolve(dir);
  // A folder made for a GGUF (gguf-view.ts, or a worker's stage of one): its tensors are GGUF blocks.
  if (isGgufFolder(abs)) return openGgufFolder(abs, opts, openCheckpoint);
  const configText = readText(path.join(abs, 'config.json'));
  if (configText === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [abs]);
  const locator = new TensorLocator(abs);
  const config = parseConfig(configText, readText(path.join(abs, 'generation_config.json')), { hasLmHead: locator.has(LM_HEAD) });
  const [start, end] = opts.range ?? [0, config.numLayers];
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= config.numLayers)) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', ['config.json', `layer range [${start}, ${end}) is outside the model's ${config.numLayers} layers`]);
  }
  const ckpt = new FolderCheckpoint(abs, config, locator);
  for (const [name, shape] of tensorShapesForRange(config, start, end)) ckpt.expect(name, shape);
  return ckpt;
}
