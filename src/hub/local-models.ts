// `hearth models`: the checkpoints under the models dir — pulled ones at <org>/<name>/, and any
// folder copied in by hand (one or two levels deep) that holds a config.json. Parameter counts and
// dtypes come from the safetensors headers alone, so listing a 70B model reads a few KB.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import { readSafetensorsHeader } from '../weights/index.ts';
import { INDEX_FILE } from './checkpoint-files.ts';
import { PARTIAL_SUFFIX } from './download-one.ts';
import { readPullMarker } from './pull-marker.ts';

export interface LocalModel {
  /** Path under the models dir with `/` separators: the Hub id for pulled models. */
  readonly id: string;
  readonly dir: string;
  /** config.json model_type (llama, qwen2, qwen3, mistral, …), or "?" when absent. */
  readonly family: string;
  /** Total elements over all tensors, or null when a header cannot be read. */
  readonly params: number | null;
  /** The dtype holding most bytes (F32, BF16, …), or null. */
  readonly dtype: string | null;
  readonly sizeBytes: number;
  /** complete, or partial while a pull is unfinished (resume it with `hearth pull`). */
  readonly state: 'complete' | 'partial';
}

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => null))?.isDirectory() ?? false;
}

async function describe(root: string, dir: string): Promise<LocalModel> {
  const names = await readdir(dir);
  let family = '?';
  try {
    const cfg = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as { model_type?: unknown };
    if (typeof cfg.model_type === 'string') family = cfg.model_type;
  } catch {
    // Listed anyway: the user should see the folder exists, with what is unknown left as "?".
  }
  let sizeBytes = 0;
  for (const n of names) {
    const st = await stat(path.join(dir, n)).catch(() => null);
    if (st?.isFile() === true) sizeBytes += st.size;
  }
  let params: number | null = 0;
  const bytesByDtype = new Map<string, number>();
  let shards = names.filter((n) => n.endsWith('.safetensors'));
  if (names.includes(INDEX_FILE)) {
    try {
      const map = (JSON.parse(await readFile(path.join(dir, INDEX_FILE), 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      const indexed = new Set(Object.values(map));
      shards = shards.filter((s) => indexed.has(s));
    } catch {
      // A broken index: count every shard present.
    }
  }
  for (const s of shards) {
    try {
      for (const t of (await readSafetensorsHeader(path.join(dir, s))).tensors) {
        params = (params ?? 0) + t.shape.reduce((a, b) => a * b, 1);
        bytesByDtype.set(t.dtype, (bytesByDtype.get(t.dtype) ?? 0) + t.byteEnd - t.byteStart);
      }
    } catch {
      params = null;
      break;
    }
  }
  const dtype = [...bytesByDtype.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
  const marker = await readPullMarker(dir);
  const unfinished = names.some((n) => n.endsWith(PARTIAL_SUFFIX)) || (marker !== null && marker.completedAt === null) || shards.length === 0;
  return {
    id: path.relative(root, dir).split(path.sep).join('/'),
    dir,
    family,
    params: shards.length === 0 ? null : params,
    dtype,
    sizeBytes,
    state: unfinished ? 'partial' : 'complete',
  };
}

export async function listLocalModels(modelsDir: string): Promise<LocalModel[]> {
  const root = path.resolve(modelsDir);
  if (!(await isDir(root))) return [];
  const found: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (depth > 0 && (names.includes('config.json') || names.includes(`config.json${PARTIAL_SUFFIX}`) || names.includes('.hearth-pull.json'))) {
      found.push(dir);
      return;
    }
    if (depth >= 2) return;
    for (const n of names.sort()) {
      if (n.startsWith('.')) continue;
      const sub = path.join(dir, n);
      if (await isDir(sub)) await visit(sub, depth + 1);
    }
  };
  await visit(root, 0);
  return Promise.all(found.map((d) => describe(root, d)));
}
