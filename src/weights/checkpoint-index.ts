// What the gateway can serve from a checkpoint folder: its plain files and, for every tensor, the
// file and byte range holding it. The sha256 of each tensor is computed the first time someone asks
// for it and remembered until the file changes (size or mtime), so a gateway serving a 16 GB model
// does not hash it all at start — only the stages that are actually fetched.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import { HearthError } from '../errors/index.ts';
import { MANIFEST_VERSION, type ManifestFile, type ManifestTensor, type WeightsManifest } from './manifest-types.ts';
import { readSafetensorsHeader, type SafetensorsEntry } from './safetensors-header.ts';
import { stageTensorNames } from './stage-tensors.ts';
import { hashRange } from './range-hasher.ts';

/** Files a worker may need besides weights: configs, tokenizers, chat templates. */
const SERVABLE_RE = /^[^./][^/]*\.(json|safetensors|model|txt|jinja)$/;
/** A folder made for a GGUF (src/gguf/gguf-view.ts) serves its linked .gguf file(s) as weights. */
const GGUF_RE = /^[^./][^/]*\.gguf$/;
const GGUF_MARKER = 'hearth-gguf.json';

/** The GGUF folder's tensor table by file: HF names, raw GGUF blocks typed GGUF_<type> (issue 24). */
async function ggufTensors(dir: string): Promise<Map<string, SafetensorsEntry[]> | null> {
  let marker: { tensors?: { name: string; type: string; shape: number[]; file: string; byteStart: number; byteEnd: number }[] };
  try {
    marker = JSON.parse(await readFile(path.join(dir, GGUF_MARKER), 'utf8')) as typeof marker;
  } catch {
    return null;
  }
  const out = new Map<string, SafetensorsEntry[]>();
  for (const t of marker.tensors ?? []) {
    const list = out.get(t.file) ?? [];
    list.push({ name: t.name, dtype: `GGUF_${t.type}`, shape: t.shape, byteStart: t.byteStart, byteEnd: t.byteEnd });
    out.set(t.file, list);
  }
  return out;
}

interface FileState {
  readonly name: string;
  readonly abs: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly tensors: readonly SafetensorsEntry[];
  readonly hashes: Map<string, Promise<string>>;
}

export class CheckpointIndex {
  readonly #dir: string;
  readonly #model: string;
  #files = new Map<string, FileState>();

  constructor(modelDir: string, modelId: string) {
    this.#dir = path.resolve(modelDir);
    this.#model = modelId;
  }

  /** Absolute path and size of a servable file, or null: names are looked up, never joined blindly. */
  async file(name: string): Promise<{ abs: string; size: number } | null> {
    await this.#refresh();
    const f = this.#files.get(name);
    return f === undefined ? null : { abs: f.abs, size: f.size };
  }

  async manifest(range?: { start: number; end: number }): Promise<WeightsManifest> {
    await this.#refresh();
    const { numLayers, tieEmbeddings } = await this.#config();
    if (range !== undefined && range.end > numLayers) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`layer range [${range.start}, ${range.end}) exceeds the model's ${numLayers} layers`], { param: 'end' });
    }
    const all: { f: FileState; t: SafetensorsEntry }[] = [];
    for (const f of this.#files.values()) for (const t of f.tensors) all.push({ f, t });
    let chosen = all;
    if (range !== undefined) {
      const keep = new Set(stageTensorNames(all.map((x) => x.t.name), range.start, range.end, numLayers, tieEmbeddings ?? undefined));
      chosen = all.filter((x) => keep.has(x.t.name));
    }
    const tensors: ManifestTensor[] = await Promise.all(
      chosen.map(async ({ f, t }) => ({
        name: t.name, file: f.name, dtype: t.dtype, shape: t.shape, byteStart: t.byteStart, byteEnd: t.byteEnd,
        sha256: await this.#hash(f, t),
      })),
    );
    const files: ManifestFile[] = [...this.#files.values()].map((f) => ({ name: f.name, size: f.size }));
    return { version: MANIFEST_VERSION, model: this.#model, numLayers, tieEmbeddings, files, tensors };
  }

  /** Byte intervals [start, end) per .safetensors file holding the tensors of stage [start, end)
   *  (what a grant for that stage may read; issue 19). No hashing: cheap per request. */
  async stageIntervals(range: { start: number; end: number }): Promise<Map<string, [number, number][]>> {
    await this.#refresh();
    const { numLayers, tieEmbeddings } = await this.#config();
    const all: { f: FileState; t: SafetensorsEntry }[] = [];
    for (const f of this.#files.values()) for (const t of f.tensors) all.push({ f, t });
    const keep = new Set(stageTensorNames(all.map((x) => x.t.name), range.start, range.end, Math.max(numLayers, range.end), tieEmbeddings ?? undefined));
    const out = new Map<string, [number, number][]>();
    for (const { f, t } of all) {
      if (!keep.has(t.name)) continue;
      const list = out.get(f.name) ?? [];
      list.push([t.byteStart, t.byteEnd]);
      out.set(f.name, list);
    }
    return out;
  }

  async #config(): Promise<{ numLayers: number; tieEmbeddings: boolean | null }> {
    const text = await readFile(path.join(this.#dir, 'config.json'), 'utf8').catch(() => {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [this.#dir]);
    });
    type Cfg = { num_hidden_layers?: unknown; tie_word_embeddings?: unknown; text_config?: Cfg };
    let cfg: Cfg;
    try {
      cfg = JSON.parse(text) as Cfg;
    } catch (e) {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [path.join(this.#dir, 'config.json'), `not valid JSON (${(e as Error).message})`]);
    }
    const n = cfg.num_hidden_layers ?? cfg.text_config?.num_hidden_layers;
    if (typeof n !== 'number') throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [path.join(this.#dir, 'config.json'), 'num_hidden_layers is missing']);
    const tie = cfg.tie_word_embeddings ?? cfg.text_config?.tie_word_embeddings;
    return { numLayers: n, tieEmbeddings: typeof tie === 'boolean' ? tie : null };
  }

  /** Re-lists the folder; keeps cached hashes of files whose size and mtime did not change. */
  async #refresh(): Promise<void> {
    const names = (await readdir(this.#dir).catch(() => {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [this.#dir]);
    })).filter((n) => SERVABLE_RE.test(n) || GGUF_RE.test(n)).sort();
    const gguf = names.includes(GGUF_MARKER) ? await ggufTensors(this.#dir) : null;
    const weightFiles = gguf !== null ? new Set(gguf.keys()) : await this.#weightFiles(names.filter((n) => !GGUF_RE.test(n)));
    const next = new Map<string, FileState>();
    for (const name of names) {
      const abs = path.join(this.#dir, name);
      const st = await stat(abs).catch(() => null);
      if (st === null || !st.isFile()) continue;
      const prev = this.#files.get(name);
      // Whole milliseconds: sub-ms mtime precision varies by filesystem and by how it was set.
      if (prev !== undefined && prev.size === st.size && prev.mtimeMs === Math.trunc(st.mtimeMs)) {
        next.set(name, prev);
        continue;
      }
      // A .gguf that the folder's table does not name is not served at all.
      if (GGUF_RE.test(name) && !weightFiles.has(name)) continue;
      const tensors = !weightFiles.has(name) ? [] : gguf !== null ? (gguf.get(name) ?? []) : (await readSafetensorsHeader(abs)).tensors;
      next.set(name, { name, abs, size: st.size, mtimeMs: Math.trunc(st.mtimeMs), tensors, hashes: new Map() });
    }
    this.#files = next;
  }

  /** The index's weight_map decides which .safetensors hold the model (a folder may also keep others). */
  async #weightFiles(names: readonly string[]): Promise<Set<string>> {
    const st = names.filter((n) => n.endsWith('.safetensors'));
    if (!names.includes('model.safetensors.index.json')) return new Set(st);
    const idx = JSON.parse(await readFile(path.join(this.#dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map?: Record<string, string> };
    return new Set(Object.values(idx.weight_map ?? {}).filter((n) => st.includes(n)));
  }

  #hash(f: FileState, t: SafetensorsEntry): Promise<string> {
    let p = f.hashes.get(t.name);
    if (p === undefined) {
      p = hashRange(f.abs, t.byteStart, t.byteEnd);
      // A failed hash is not remembered: the next request tries again.
      p.catch(() => f.hashes.delete(t.name));
      f.hashes.set(t.name, p);
    }
    return p;
  }
}
