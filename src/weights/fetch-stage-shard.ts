// The worker side of "quantized once per cluster, fetched as int4" (issue 20): ask the gateway for
// the prebuilt shard of this node's range, fetch its files (model.onnx + w<i>.bin) into this
// node's shard cache under the entry's content address, each checked against the manifest's
// sha256, plus the small files (config.json, tokenizer, template) into a stage folder. The session
// then loads the entry as it is: no bf16 tensors fetched, nothing quantized here.
//
// - null when the gateway offers none (quant none, an older gateway without the route, a failed
//   build): the caller fetches the tensors and builds, as before.
// - Warm: an entry already in the cache under the manifest's key is used without a byte fetched.
// - Resumable: files land in <cache>/tmp/fetch-<key>/; a fetch cut off continues from the bytes
//   already there (Range), a file already whole is checked and kept.
// - A file whose sha256 differs from the manifest is deleted and the fetch fails with
//   HEARTH_ERR_WEIGHTS_FETCH naming it (the caller falls back to the tensors).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { HearthError } from '../errors/index.ts';
import { ShardCache } from '../runtime/shard-cache.ts';
import type { ShardKeyParts } from '../runtime/shard-cache-key.ts';
import type { AttentionKind } from '../model/onnx/index.ts';
import { SHARD_MANIFEST_VERSION, type ShardManifest, type ShardManifestFile } from './manifest-types.ts';
import { stageDir } from './stage-cache.ts';
import { WEIGHTS_PREFIX } from './weights-routes.ts';

export interface EnsureStageShardOptions {
  readonly gatewayUrl: string;
  readonly token: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  /** Where the stage folder (config, tokenizer) goes: the same cache as fetched stage weights. */
  readonly cacheDir: string;
  /** This node's shard cache (resolveShardCacheDir()); the entry is stored there. */
  readonly shardCacheDir: string;
  /** Bytes of shard files fetched / total (a cache hit reports 0 of 0). */
  readonly onProgress?: (done: number, total: number) => void;
  /** How long to wait while the gateway builds the stage (default 30 min). */
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

export interface StageShard {
  /** The stage folder: config.json and the tokenizer files. */
  readonly dir: string;
  readonly prebuilt: { readonly cacheDir: string; readonly key: string; readonly tieEmbeddings: boolean | null };
  /** Shard bytes fetched now (0 when the entry was already here). */
  readonly fetchedBytes: number;
  readonly manifest: ShardManifest;
}

export type StageShardResult = StageShard | { readonly offered: false; readonly why: string };

const WRITE_BATCH = 4 * 1024 * 1024;
const KEY_RE = /^[0-9a-f]{32}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA_RE = /^[0-9a-f]{64}$/;

export async function ensureStageShard(opts: EnsureStageShardOptions): Promise<StageShardResult> {
  const what = `the int4 shard of ${opts.model} layers [${opts.start}, ${opts.end})`;
  const fail = (why: string): HearthError => new HearthError('HEARTH_ERR_WEIGHTS_FETCH', [what, why]);
  const base = `${opts.gatewayUrl.replace(/\/+$/, '')}${WEIGHTS_PREFIX}/${encodeURIComponent(opts.model)}`;
  const get = async (url: string, range?: string): Promise<Response> => {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.token}` };
    if (range !== undefined) headers['range'] = range;
    try {
      return await fetch(url, { headers, ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
    } catch (e) {
      const err = e as Error & { cause?: { message?: string } };
      if (err.name === 'AbortError') throw e;
      throw fail(`cannot reach the gateway at ${opts.gatewayUrl}: ${err.cause?.message ?? err.message}`);
    }
  };

  // The manifest; wait while the gateway builds it.
  const deadline = Date.now() + (opts.waitMs ?? 30 * 60_000);
  let manifest: ShardManifest;
  for (;;) {
    const res = await get(`${base}/shard?start=${opts.start}&end=${opts.end}`);
    if (res.status === 404) {
      const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
      const code = body?.error?.code;
      return { offered: false, why: code === 'HEARTH_ERR_SHARD_NOT_OFFERED' ? (body?.error?.message ?? code) : 'the gateway has no /shard route (an older gateway)' };
    }
    if (res.status === 503 && Date.now() < deadline) {
      await res.arrayBuffer().catch(() => undefined);
      const s = Number(res.headers.get('retry-after'));
      await new Promise((r) => setTimeout(r, 1000 * (Number.isFinite(s) && s > 0 ? Math.min(s, 30) : 2)));
      continue;
    }
    if (!res.ok) throw fail(`GET ${base}/shard answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    manifest = (await res.json()) as ShardManifest;
    break;
  }
  check(manifest, opts, fail);

  const dir = `${stageDir(opts.cacheDir, opts.model, opts.start, opts.end)}.${manifest.quant}`;
  await fetchExtras(dir, manifest.extras, base, get, fail);

  const prebuilt = { cacheDir: opts.shardCacheDir, key: manifest.key, tieEmbeddings: manifest.tieEmbeddings };
  const cache = ShardCache.open(opts.shardCacheDir);
  if (cache.read(manifest.key) !== null) {
    opts.onProgress?.(0, 0);
    return { dir, prebuilt, fetchedBytes: 0, manifest };
  }
  const work = path.join(opts.shardCacheDir, 'tmp', `fetch-${manifest.key}`);
  await mkdir(work, { recursive: true });
  const total = manifest.files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  let fetched = 0;
  const progress = (n: number, wire: boolean): void => {
    done += n;
    if (wire) fetched += n;
    opts.onProgress?.(done, total);
  };
  for (const f of manifest.files) {
    await fetchFile(path.join(work, f.name), f, `${base}/shard/${manifest.key}/${encodeURIComponent(f.name)}`, get, progress, fail);
  }
  // The entry as the gateway has it: same key, same parts, same files.
  const hashes = new Map(manifest.files.map((f) => [path.join(work, f.name), f.sha256]));
  const stored = cache.commit(work, {
    key: manifest.key, parts: manifest.parts as ShardKeyParts, links: {}, attention: manifest.attention as AttentionKind,
    weightBytes: manifest.weightBytes, lookupBytes: manifest.lookupBytes,
  }, manifest.files.map((f) => f.name), hashes, new Set());
  // Another process stored the same content first: theirs is as good.
  if (!stored) await rm(work, { recursive: true, force: true });
  cache.evict(manifest.key);
  return { dir, prebuilt, fetchedBytes: fetched, manifest };
}

function check(m: ShardManifest, opts: EnsureStageShardOptions, fail: (why: string) => HearthError): void {
  if (m.version !== SHARD_MANIFEST_VERSION) throw fail(`the gateway speaks shard manifest version ${String(m.version)}; this worker reads ${SHARD_MANIFEST_VERSION}`);
  if (m.start !== opts.start || m.end !== opts.end) throw fail(`the manifest is for layers [${m.start}, ${m.end})`);
  if (typeof m.key !== 'string' || !KEY_RE.test(m.key)) throw fail('the manifest has no valid key');
  const files = [...m.files, ...m.extras];
  if (!m.files.some((f) => f.name === 'model.onnx')) throw fail('the manifest lists no model.onnx');
  for (const f of files) {
    if (!NAME_RE.test(f.name) || f.name === 'manifest.json' || !Number.isSafeInteger(f.size) || f.size < 0 || !SHA_RE.test(f.sha256)) throw fail(`the manifest lists a bad file entry ${JSON.stringify(f.name)}`);
  }
}

/** sha256 of the first `n` bytes of a file (the part of a resumed file already here). */
async function hashPrefix(file: string, n: number): Promise<ReturnType<typeof createHash>> {
  const h = createHash('sha256');
  if (n === 0) return h;
  for await (const chunk of createReadStream(file, { start: 0, end: n - 1, highWaterMark: WRITE_BATCH })) h.update(chunk as Buffer);
  return h;
}

async function fetchFile(
  file: string, f: ShardManifestFile, url: string,
  get: (url: string, range?: string) => Promise<Response>,
  progress: (n: number, wire: boolean) => void,
  fail: (why: string) => HearthError,
): Promise<void> {
  const have = Math.min((await stat(file).catch(() => null))?.size ?? 0, f.size);
  const h = await hashPrefix(file, have);
  progress(have, false);
  const mismatch = async (got: string): Promise<HearthError> => {
    await rm(file, { force: true });
    return fail(`${f.name}: sha256 ${got} does not match the manifest's ${f.sha256}`);
  };
  if (have === f.size) {
    const got = h.digest('hex');
    if (got !== f.sha256) throw await mismatch(got);
    return;
  }
  const res = await get(url, `bytes=${have}-`);
  if (res.status !== 206 && !(res.status === 200 && have === 0)) {
    throw fail(`GET ${url} answered ${res.status}: ${res.status === 403 || res.status === 404 ? (await res.text()).slice(0, 200) : 'expected the asked bytes'}`);
  }
  const out = await open(file, have === 0 ? 'w' : 'a');
  let pos = have;
  try {
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      await out.writev(pending, pos);
      pos += pendingBytes;
      progress(pendingBytes, true);
      pending = [];
      pendingBytes = 0;
    };
    if (res.body === null) throw fail(`${f.name}: empty response`);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (pos + pendingBytes + chunk.length > f.size) throw fail(`${f.name}: the gateway sent more than its ${f.size} bytes`);
      h.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BATCH) await flush();
    }
    await flush();
    await out.sync();
  } finally {
    await out.close();
  }
  if (pos !== f.size) throw fail(`${f.name}: the response ended at ${pos} of ${f.size} bytes`);
  const got = h.digest('hex');
  if (got !== f.sha256) throw await mismatch(got);
}

/** The small files into the stage folder, each checked; ones already there with the right hash stay. */
async function fetchExtras(
  dir: string, extras: readonly ShardManifestFile[], base: string,
  get: (url: string, range?: string) => Promise<Response>,
  fail: (why: string) => HearthError,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const f of extras) {
    const abs = path.join(dir, f.name);
    const now = await readFile(abs).catch(() => null);
    if (now !== null && createHash('sha256').update(now).digest('hex') === f.sha256) continue;
    const res = await get(`${base}/file/${encodeURIComponent(f.name)}`);
    if (!res.ok) throw fail(`GET ${base}/file/${f.name} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    const body = Buffer.from(await res.arrayBuffer());
    const got = createHash('sha256').update(body).digest('hex');
    if (got !== f.sha256) throw fail(`${f.name}: sha256 ${got} does not match the manifest's ${f.sha256}`);
    const tmp = `${abs}.partial-${process.pid}`;
    await writeFile(tmp, body);
    await rename(tmp, abs);
  }
}
