// `hearth pull ORG/NAME`: download the files a checkpoint needs from the Hugging Face Hub (or any
// server speaking its API, --endpoint) into <models dir>/<org>/<name>/, with progress, resume and
// checksums. Listing and downloads go through @huggingface/hub (listFiles, fileDownloadInfo,
// downloadFile), the same routes huggingface_hub uses: /api/models/<id>/tree/<rev> and
// /<id>/resolve/<rev>/<path>.
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { listFiles, type ListFileEntry } from '@huggingface/hub';

import { HearthError } from '../errors/index.ts';
import { INDEX_FILE, isCheckpointFile, selectWeightFiles } from './checkpoint-files.ts';
import { downloadOne, partialBytes } from './download-one.ts';
import { newHasher, type ExpectedHash } from './file-hash.ts';
import { defaultModelsDir, modelDirFor } from './models-dir.ts';
import { silentProgress, type ProgressSink } from './progress-bar.ts';
import { downloadError, isRetryable, listingError } from './pull-errors.ts';
import { readPullMarker, writePullMarker, type PullMarker } from './pull-marker.ts';
import { resumeSafeFetch } from './resume-fetch.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface PullOptions {
  /** Hub model id, ORG/NAME. */
  readonly id: string;
  /** Branch, tag or commit. Default "main". */
  readonly revision?: string;
  /** Default: defaultModelsDir() (HEARTH_MODELS_DIR or ~/.cache/hearth/models). */
  readonly modelsDir?: string;
  /** Hub base URL. Default HF_ENDPOINT or https://huggingface.co. */
  readonly endpoint?: string;
  /** Hub token for gated/private repos (hf_…). Default HF_TOKEN. */
  readonly accessToken?: string;
  /** Resumed attempts per file after a network failure within this run. Default 3. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  readonly progress?: ProgressSink;
  readonly signal?: AbortSignal;
  /** For tests and proxies; default globalThis.fetch. */
  readonly fetch?: typeof fetch;
}

export interface PullResult {
  readonly dir: string;
  readonly downloaded: readonly string[];
  readonly skipped: readonly string[];
  readonly bytes: number;
}

function expectedHash(e: ListFileEntry): ExpectedHash {
  return e.lfs !== undefined ? { algo: 'sha256', hex: e.lfs.oid.toLowerCase() } : { algo: 'git-sha1', hex: (e.oid ?? '').toLowerCase() };
}

async function hashFile(file: string, expected: ExpectedHash, size: number): Promise<string> {
  const h = newHasher(expected, size);
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function pullModel(opts: PullOptions): Promise<PullResult> {
  const id = opts.id;
  const revision = opts.revision ?? 'main';
  const hubUrl = (opts.endpoint ?? process.env['HF_ENDPOINT'] ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const token = opts.accessToken ?? process.env['HF_TOKEN'];
  const accessToken = token !== undefined && token !== '' ? token : undefined;
  const progress = opts.progress ?? silentProgress;
  const retries = opts.retries ?? 3;
  const dir = modelDirFor(opts.modelsDir ?? defaultModelsDir(), id);
  const f = resumeSafeFetch(opts.fetch ?? globalThis.fetch, opts.signal);
  const cred = accessToken === undefined ? {} : { accessToken };

  let entries: ListFileEntry[] = [];
  try {
    for await (const e of listFiles({ repo: { type: 'model', name: id }, revision, hubUrl, fetch: f, ...cred })) {
      if (e.type === 'file' && isCheckpointFile(e.path)) entries.push(e);
    }
  } catch (e) {
    throw listingError(e, id, revision, hubUrl);
  }
  if (!entries.some((e) => e.path === 'config.json')) throw new HearthError('HEARTH_ERR_PULL', [id, 'the repo has no config.json at its top level: not a transformers checkpoint']);
  if (!entries.some((e) => e.path.endsWith('.safetensors'))) throw new HearthError('HEARTH_ERR_PULL', [id, 'the repo has no .safetensors weights (hearth reads safetensors only)']);
  // Small files first: the index among them decides which shards are needed.
  entries.sort((a, b) => Number(a.path.endsWith('.safetensors')) - Number(b.path.endsWith('.safetensors')) || a.path.localeCompare(b.path));

  await mkdir(dir, { recursive: true });
  const prev = await readPullMarker(dir);
  const sameSource = prev !== null && prev.id === id && prev.endpoint === hubUrl;
  const marker: PullMarker = { id, revision, endpoint: hubUrl, files: sameSource ? { ...prev.files } : {}, completedAt: null };
  await writePullMarker(dir, marker);

  const isVerified = async (e: ListFileEntry): Promise<boolean> => {
    const dest = path.join(dir, e.path);
    const exp = expectedHash(e);
    const st = await stat(dest).catch(() => null);
    if (st === null || st.size !== e.size) return false;
    if (marker.files[e.path]?.oid !== exp.hex && (await hashFile(dest, exp, e.size)) !== exp.hex) return false;
    marker.files[e.path] = { size: e.size, oid: exp.hex };
    return true;
  };
  const fetchOne = async (e: ListFileEntry, sink: ProgressSink): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        await downloadOne({ id, path: e.path, revision, hubUrl, fetch: f, dest: path.join(dir, e.path), size: e.size, expected: expectedHash(e), progress: sink, ...cred, ...(e.xetHash === undefined ? {} : { xetHash: e.xetHash }) });
        break;
      } catch (err) {
        if (opts.signal?.aborted === true) throw new HearthError('HEARTH_ERR_PULL', [id, `${e.path}: cancelled; run the same command again to resume`], { cause: err });
        if (attempt >= retries || !isRetryable(err)) throw downloadError(err, id, e.path);
        await sleep((opts.retryDelayMs ?? 1000) * 2 ** attempt);
      }
    }
    marker.files[e.path] = { size: e.size, oid: expectedHash(e).hex };
    await writePullMarker(dir, marker);
  };

  // The shard index comes first (it is small): only the shards it names are needed.
  const downloaded: string[] = [];
  const skipped: string[] = [];
  const index = entries.find((e) => e.path === INDEX_FILE);
  if (index !== undefined) {
    if (await isVerified(index)) skipped.push(index.path);
    else {
      await fetchOne(index, silentProgress);
      downloaded.push(index.path);
    }
    const wanted = new Set(selectWeightFiles(entries.map((e) => e.path), await readFile(path.join(dir, INDEX_FILE), 'utf8')));
    entries = entries.filter((e) => e !== index && wanted.has(e.path));
  }

  // Skip what is already verified; count what is left (partials count only their missing bytes).
  const todo: ListFileEntry[] = [];
  for (const e of entries) {
    if (await isVerified(e)) skipped.push(e.path);
    else todo.push(e);
  }
  let total = 0;
  for (const e of todo) total += e.size - Math.min(e.size, await partialBytes(path.join(dir, e.path)));
  progress.start(total, todo.length);
  for (const s of skipped) progress.fileDone(s, true);
  for (const e of todo) {
    progress.fileStart(e.path, e.size);
    await fetchOne(e, progress);
    progress.fileDone(e.path, false);
    downloaded.push(e.path);
  }
  await writePullMarker(dir, { ...marker, completedAt: new Date().toISOString() });
  progress.finish();
  return { dir, downloaded, skipped, bytes: total };
}
