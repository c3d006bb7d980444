// The worker side of "weights to workers": fetch only the tensors of layers [start, end) (plus the
// embedding on the first stage and norm + lm_head on the last) from the gateway as HTTP byte ranges,
// verify each against the manifest's sha256, and write a real checkpoint folder that
// openCheckpoint(dir, { range: [start, end] }) opens. A finished folder is reused without asking
// the gateway anything; a failed fetch leaves nothing behind.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdir, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import { HearthError, isHearthError } from '../errors/index.ts';
import { MANIFEST_VERSION, type ManifestTensor, type WeightsManifest } from './manifest-types.ts';
import { writeSidecarDigests } from '../runtime/digest-sidecar.ts';
import { layoutSafetensors } from './safetensors-writer.ts';
import { readValidMarker, STAGE_MARKER, STAGE_MARKER_VERSION, stageDir, type StageMarker } from './stage-cache.ts';
import { stageTensorNames } from './stage-tensors.ts';
import { WEIGHTS_PREFIX } from './weights-routes.ts';

export interface EnsureStageWeightsOptions {
  readonly gatewayUrl: string;
  readonly token: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly numLayers: number;
  readonly cacheDir: string;
  /** Bytes done / total of this fetch (total is known after the manifest; a cache hit reports total/total once). */
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
  /** How a cached folder is checked before reuse: file sizes (default, instant) or a full sha256 re-read. */
  readonly verifyCache?: 'size' | 'full';
}

/** The written stage file: one safetensors holding exactly the stage's tensors. */
export const STAGE_WEIGHTS_FILE = 'model.safetensors';
/** Bytes gathered before one write to the stage file. */
const WRITE_BATCH = 4 * 1024 * 1024;
/** Not copied: it would point at shard files the stage folder does not have. */
const SKIPPED_FILES = new Set(['model.safetensors.index.json']);

export async function ensureStageWeights(opts: EnsureStageWeightsOptions): Promise<string> {
  const { model, start, end, numLayers } = opts;
  const what = `${model} layers [${start}, ${end})`;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end > numLayers) {
    throw new HearthError('HEARTH_ERR_WEIGHTS_FETCH', [what, `invalid layer range for a ${numLayers}-layer model`]);
  }
  const dir = stageDir(opts.cacheDir, model, start, end);
  const cached = await readValidMarker(dir, { model, start, end, numLayers }, opts.verifyCache ?? 'size');
  if (cached !== null) {
    const total = Object.values(cached.files).reduce((s, f) => s + f.size, 0);
    opts.onProgress?.(total, total);
    return dir;
  }
  const tmp = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(tmp, { recursive: true });
    await fetchInto(tmp, opts, what);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir).catch(async (e: unknown) => {
      // Another process on this machine finished the same stage first: use theirs.
      if ((await readValidMarker(dir, { model, start, end, numLayers }, 'size')) === null) throw e;
      await rm(tmp, { recursive: true, force: true });
    });
    return dir;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    if (isHearthError(e)) throw e;
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why = err.name === 'AbortError' ? 'aborted' : err.cause?.message ?? err.message;
    throw new HearthError('HEARTH_ERR_WEIGHTS_FETCH', [what, why], { cause: e });
  }
}

async function fetchInto(tmp: string, opts: EnsureStageWeightsOptions, what: string): Promise<void> {
  const fail = (why: string): HearthError => new HearthError('HEARTH_ERR_WEIGHTS_FETCH', [what, why]);
  const base = `${opts.gatewayUrl.replace(/\/+$/, '')}${WEIGHTS_PREFIX}/${encodeURIComponent(opts.model)}`;
  const get = async (url: string, range?: string): Promise<Response> => {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.token}` };
    if (range !== undefined) headers['range'] = range;
    let res: Response;
    try {
      res = await fetch(url, { headers, ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
    } catch (e) {
      const err = e as Error & { cause?: { message?: string } };
      if (err.name === 'AbortError') throw e;
      throw fail(`cannot reach the gateway at ${opts.gatewayUrl}: ${err.cause?.message ?? err.message}`);
    }
    if (res.status === 401) throw fail('the gateway refused the cluster token (401)');
    if (!res.ok) throw fail(`GET ${url} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    return res;
  };

  const manifest = (await (await get(`${base}/manifest?start=${opts.start}&end=${opts.end}`)).json()) as WeightsManifest;
  if (manifest.version !== MANIFEST_VERSION) throw fail(`the gateway speaks manifest version ${String(manifest.version)}; this worker reads ${MANIFEST_VERSION}`);
  if (manifest.numLayers !== opts.numLayers) throw fail(`the gateway's model has ${manifest.numLayers} layers, the plan says ${opts.numLayers}`);
  const byName = new Map(manifest.tensors.map((t) => [t.name, t]));
  const names = stageTensorNames([...byName.keys()], opts.start, opts.end, opts.numLayers, manifest.tieEmbeddings ?? undefined);
  if (names.length === 0) throw fail('the manifest lists no tensors for this range');
  const tensors = names
    .map((n) => byName.get(n) as ManifestTensor)
    .sort((a, b) => (a.file === b.file ? a.byteStart - b.byteStart : a.file < b.file ? -1 : 1));
  // Weight files (.safetensors, and the .gguf a GGUF model is served from) come as byte ranges only.
  const extras = manifest.files.filter((f) => !f.name.endsWith('.safetensors') && !f.name.endsWith('.gguf') && !SKIPPED_FILES.has(f.name));

  const layout = layoutSafetensors(
    tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.byteEnd - t.byteStart })),
    { format: 'pt', 'hearth.stage': `${opts.start}-${opts.end}`, 'hearth.model': opts.model },
  );
  const total = layout.totalBytes + extras.reduce((s, f) => s + f.size, 0);
  let done = 0;
  const progress = (n: number): void => {
    done += n;
    opts.onProgress?.(done, total);
  };
  progress(0);

  const files: Record<string, { size: number; sha256: string }> = {};
  for (const f of extras) {
    const body = Buffer.from(await (await get(`${base}/file/${encodeURIComponent(f.name)}`)).arrayBuffer());
    if (body.length !== f.size) throw fail(`${f.name}: got ${body.length} bytes, the manifest says ${f.size}`);
    await writeFile(path.join(tmp, path.basename(f.name)), body);
    files[f.name] = { size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
    progress(body.length);
  }

  const out = await open(path.join(tmp, STAGE_WEIGHTS_FILE), 'w');
  const fileHash = createHash('sha256');
  try {
    await out.write(layout.header, 0, layout.header.length, 0);
    fileHash.update(layout.header);
    progress(layout.header.length);
    const w = { out, pos: layout.header.length, fileHash };
    for (const run of coalesce(tensors)) {
      const first = run[0] as ManifestTensor;
      const last = run[run.length - 1] as ManifestTensor;
      if (last.byteEnd === first.byteStart) {
        await copyRun(null, run, w, progress, fail); // only empty tensors: nothing to ask for
        continue;
      }
      const res = await get(`${base}/file/${encodeURIComponent(first.file)}`, `bytes=${first.byteStart}-${last.byteEnd - 1}`);
      if (res.status !== 206) throw fail(`${first.file}: the gateway ignored the byte range (status ${res.status})`);
      await copyRun(res, run, w, progress, fail);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  files[STAGE_WEIGHTS_FILE] = { size: layout.totalBytes, sha256: fileHash.digest('hex') };

  const marker: StageMarker = {
    version: STAGE_MARKER_VERSION, model: opts.model, start: opts.start, end: opts.end, numLayers: opts.numLayers,
    files, tensors: Object.fromEntries(tensors.map((t) => [t.name, t.sha256])), fetchedAt: new Date().toISOString(),
  };
  await writeFile(path.join(tmp, STAGE_MARKER), JSON.stringify(marker, null, 1));
  // The digests just computed, beside the data: the shard build keys its cache by them instead of
  // reading gigabytes again, now and after the folder is moved.
  writeSidecarDigests(tmp, Object.fromEntries(Object.entries(files).map(([name, f]) => [name, f.sha256])));
}

/** Tensors that sit back to back in one file go out as one Range request (a layer is usually one run). */
function coalesce(tensors: readonly ManifestTensor[]): ManifestTensor[][] {
  const runs: ManifestTensor[][] = [];
  for (const t of tensors) {
    const run = runs[runs.length - 1];
    const prev = run?.[run.length - 1];
    if (run !== undefined && prev !== undefined && prev.file === t.file && prev.byteEnd === t.byteStart) run.push(t);
    else runs.push([t]);
  }
  return runs;
}

/** Streams one ranged response into the output, hashing each tensor as its bytes pass by. */
async function copyRun(
  res: Response | null,
  run: readonly ManifestTensor[],
  w: { out: FileHandle; pos: number; fileHash: Hash },
  progress: (n: number) => void,
  fail: (why: string) => HearthError,
): Promise<void> {
  let i = 0;
  let t = run[0] as ManifestTensor;
  let left = t.byteEnd - t.byteStart;
  let h = createHash('sha256');
  const finishTensor = (): void => {
    const got = h.digest('hex');
    if (got !== t.sha256) throw fail(`tensor ${t.name} (${t.file} bytes ${t.byteStart}-${t.byteEnd}): sha256 ${got} does not match the manifest's ${t.sha256}`);
    i += 1;
    const next = run[i];
    if (next !== undefined) {
      t = next;
      left = t.byteEnd - t.byteStart;
      h = createHash('sha256');
    }
  };
  // Chunks arrive at 16-64 KB; one awaited write each made the fetch crawl at ~50 MB/s on loopback
  // (a 3B model's stage took a minute). Written in batches of a few MB, it runs at disk speed.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const bufs = pending;
    const n = pendingBytes;
    pending = [];
    pendingBytes = 0;
    await w.out.writev(bufs, w.pos);
    w.pos += n;
    progress(n);
  };
  const body = res === null ? [] : res.body;
  if (body === null) throw fail(`${t.file}: empty response`);
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    let off = 0;
    while (off < chunk.length) {
      if (i >= run.length) throw fail(`${t.file}: the gateway sent more bytes than asked for`);
      const n = Math.min(left, chunk.length - off);
      const part = chunk.subarray(off, off + n);
      h.update(part);
      left -= n;
      off += n;
      if (left === 0) finishTensor();
    }
    w.fileHash.update(chunk);
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= WRITE_BATCH) await flush();
  }
  await flush();
  // Zero-byte tensors never see a chunk; settle them here.
  while (i < run.length && left === 0) finishTensor();
  if (i < run.length) throw fail(`${t.file}: the response ended early (tensor ${t.name} short by ${left} bytes)`);
}
