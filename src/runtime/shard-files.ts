// The files a shard session loads: model.onnx plus its external weights, either built now or taken
// from the shard cache (see shard-cache.ts). ShardSession.create turns them into a session.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Checkpoint } from '../model/types.ts';
import { buildShardGraph, type AttentionKind, type BuildShardOptions } from '../model/onnx/index.ts';
import { moveLookupOut } from '../model/onnx/lookup-outside.ts';
import type { ShardBuildSpec } from '../model/shard-build-spec.ts';
import { QuantPool, withQuantPool } from '../model/quant-pool.ts';
import { defaultVocabBits } from '../model/quant-int8.ts';
import { defaultInt4ZeroPoints } from '../model/quant-int4.ts';
import { hashFiles } from './hash-files.ts';
import { ShardCache } from './shard-cache.ts';
import { builderVersion, CACHE_FORMAT, ContentHashes, fileIdentity, shardKey, type ShardKeyParts } from './shard-cache-key.ts';

/** How the files were obtained: hit = loaded from the cache, built = built and stored, off = cache off, error = cache unusable (built without it). */
export type CacheState = 'hit' | 'built' | 'off' | 'error';

export interface ShardFiles {
  readonly modelPath: string;
  readonly attention: AttentionKind;
  readonly weightBytes: number;
  readonly lookupBytes: number;
  readonly cache: CacheState;
  /** Why the cache could not be used (cache 'error'). */
  readonly cacheError?: string;
  /** The cache entry's key (its content address), when the files are or will be an entry. */
  readonly key?: string;
  /** KV element type the graph was built for, when it came from an entry made elsewhere (prebuilt). */
  readonly kvDtype?: string;
  /**
   * Call once onnxruntime has tried to load modelPath (`loaded`: it succeeded). Resolves false
   * when a cache entry turned out bad (it failed to load or its hashes do not match): the entry
   * is gone and the caller should drop the session and prepare again. A build is stored in the
   * cache here. Removes the temporary folder. Never rejects.
   */
  finish(loaded: boolean): Promise<boolean>;
}

export interface PrepareOptions extends Pick<BuildShardOptions, 'attention' | 'accuracyLevel' | 'headSliceRows' | 'kvDtype' | 'int4Block' | 'vocabBits' | 'int4ZeroPoints'> {
  /** Cache folder, or null for none. */
  readonly cacheDir: string | null;
  /** Where an uncached build is staged (default os.tmpdir()). */
  readonly scratchDir?: string;
  /** Threads that quantize int4 weights during a build (default 1). */
  readonly buildThreads?: number;
  /** Copy every tensor into the entry, never reference checkpoint files in place: an entry another
   *  machine can fetch and load without the checkpoint (the gateway's int4 shards, issue 20). */
  readonly selfContained?: boolean;
}

let gcFn: (() => void) | null = null;
/** A full GC, without needing node --expose-gc (V8 exposes `gc` to contexts made after the flag). */
function collectGarbage(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

interface Built {
  readonly attention: AttentionKind;
  readonly weightBytes: number;
  readonly lookupBytes: number;
  /** Link name in `work` → checkpoint file (absolute path). */
  readonly links: ReadonlyMap<string, string>;
}

/**
 * Builds the graph into `work`: weights stream to w<i>.bin as they are made (see GraphBuilder),
 * then model.onnx. With `link`, fp32 checkpoint tensors are used in place: a hard link next to the
 * model lets onnxruntime map them (it refuses external paths that resolve outside the model's
 * folder, so a symlink won't do); where a link fails (another filesystem) the builder copies.
 */
function buildInto(work: string, ckpt: Checkpoint, spec: ShardBuildSpec, opts: PrepareOptions, link: boolean): Built {
  const links = new Map<string, string | null>();
  const mapFile = (file: string): string | null => {
    if (!link) return null;
    let loc = links.get(file);
    if (loc === undefined) {
      loc = `ckpt${links.size}.safetensors`;
      try {
        fs.linkSync(file, path.join(work, loc));
      } catch {
        loc = null;
      }
      links.set(file, loc);
    }
    return loc;
  };
  const build = (): ReturnType<typeof buildShardGraph> =>
    buildShardGraph(ckpt, spec, {
      attention: opts.attention ?? 'auto',
      externalDir: work,
      mapFile,
      ...(opts.accuracyLevel !== undefined ? { accuracyLevel: opts.accuracyLevel } : {}),
      ...(opts.headSliceRows !== undefined ? { headSliceRows: opts.headSliceRows } : {}),
      ...(opts.kvDtype !== undefined ? { kvDtype: opts.kvDtype } : {}),
      ...(opts.int4Block !== undefined ? { int4Block: opts.int4Block } : {}),
      ...(opts.vocabBits !== undefined ? { vocabBits: opts.vocabBits } : {}),
      ...(opts.int4ZeroPoints !== undefined ? { int4ZeroPoints: opts.int4ZeroPoints } : {}),
    });
  const threads = spec.quant === 'int4' ? (opts.buildThreads ?? 1) : 1;
  let graph: ReturnType<typeof buildShardGraph>;
  let pool: QuantPool | null = null;
  try {
    pool = threads > 1 ? QuantPool.start(threads) : null;
  } catch {
    pool = null; // no worker threads here: quantize on this one
  }
  if (pool !== null) {
    try {
      graph = withQuantPool(pool, build);
    } finally {
      pool.close();
    }
  } else {
    graph = build();
  }
  // A first stage's quantized token lookup runs outside onnxruntime (see lookup-outside.ts).
  fs.writeFileSync(path.join(work, 'model.onnx'), (spec.start === 0 ? moveLookupOut(graph.model) : null) ?? graph.model);
  // The builder's scratch buffers are garbage now; return them before onnxruntime allocates
  // its packed weights, or they count on top of them in the peak RSS.
  collectGarbage();
  const used = new Map<string, string>();
  for (const [file, loc] of links) if (loc !== null) used.set(loc, file);
  return { attention: graph.attention, weightBytes: graph.weightBytes, lookupBytes: graph.lookupBytes, links: used };
}

function uncached(ckpt: Checkpoint, spec: ShardBuildSpec, opts: PrepareOptions, cache: CacheState, cacheError?: string): ShardFiles {
  const work = fs.mkdtempSync(path.join(opts.scratchDir ?? os.tmpdir(), 'hearth-shard-'));
  try {
    const b = buildInto(work, ckpt, spec, opts, true);
    return {
      modelPath: path.join(work, 'model.onnx'),
      attention: b.attention,
      weightBytes: b.weightBytes,
      lookupBytes: b.lookupBytes,
      cache,
      ...(cacheError !== undefined ? { cacheError } : {}),
      finish: async () => {
        fs.rmSync(work, { recursive: true, force: true });
        return true;
      },
    };
  } catch (e) {
    fs.rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/** Whether a checkpoint file can be hard-linked into the cache (same filesystem, links allowed). */
function canLink(cache: ShardCache, file: string): boolean {
  const probe = cache.workDir('probe');
  try {
    fs.linkSync(file, path.join(probe, 'x'));
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/** The checkpoint files the range reads, absolute, in a stable order. */
function checkpointFiles(ckpt: Checkpoint, spec: ShardBuildSpec): string[] {
  return [...new Set(ckpt.tensorsForRange(spec.start, spec.end).map((n) => ckpt.info(n).file))].sort();
}

export async function prepareShardFiles(ckpt: Checkpoint, spec: ShardBuildSpec, opts: PrepareOptions): Promise<ShardFiles> {
  if (opts.cacheDir === null) return uncached(ckpt, spec, opts, 'off');
  let cache: ShardCache;
  let hashes: ContentHashes;
  let files: string[];
  let mapped: boolean;
  try {
    cache = ShardCache.open(opts.cacheDir);
    hashes = new ContentHashes(cache.hashesFile);
    files = checkpointFiles(ckpt, spec);
    mapped = opts.selfContained !== true && files.length > 0 && canLink(cache, files[0] as string);
  } catch (e) {
    return uncached(ckpt, spec, opts, 'error', (e as Error).message);
  }
  let configSha = 'none';
  try {
    configSha = createHash('sha256').update(fs.readFileSync(path.join(ckpt.dir, 'config.json'))).digest('hex');
  } catch {
    // a checkpoint opened without config.json has none to tell apart
  }
  const partsFor = (shas: ReadonlyMap<string, string>): ShardKeyParts => ({
    format: CACHE_FORMAT,
    builder: builderVersion(),
    config: configSha,
    files: files.map((f) => ({ name: path.relative(ckpt.dir, f), sha256: shas.get(f) as string })),
    spec: { start: spec.start, end: spec.end, quant: spec.quant },
    build: {
      attention: opts.attention ?? 'auto',
      accuracyLevel: opts.accuracyLevel ?? null,
      headSliceRows: opts.headSliceRows ?? null,
      kvDtype: opts.kvDtype ?? 'float32',
      int4Block: opts.int4Block ?? 32,
      vocabBits: opts.vocabBits ?? defaultVocabBits(),
      // Only when set, so symmetric shards keep the keys they were cached under.
      ...(spec.quant === 'int4' && (opts.int4ZeroPoints ?? defaultInt4ZeroPoints()) ? { int4ZeroPoints: true as const } : {}),
      mapped,
    },
  });

  const known = new Map<string, string>();
  for (const f of files) {
    const h = hashes.known(f);
    if (h !== null) known.set(f, h);
  }
  if (known.size === files.length) {
    const key = shardKey(partsFor(known));
    const hit = loadEntry(cache, key, ckpt.dir);
    if (hit !== null) return hit;
  }

  // Build. Unknown checkpoint hashes are computed meanwhile in a worker thread.
  const unknown = files.filter((f) => !known.has(f));
  const before = new Map(unknown.map((f) => [f, fileIdentity(f)]));
  const hashing = hashFiles(unknown);
  const work = cache.workDir('build');
  let b: Built;
  try {
    b = buildInto(work, ckpt, spec, opts, mapped);
  } catch (e) {
    fs.rmSync(work, { recursive: true, force: true });
    throw e;
  }
  // The entry's own files are hashed while onnxruntime loads them (it blocks this thread).
  const names = ShardCache.entryNames(work, new Set(b.links.keys()));
  const entryHashes = hashFiles(names.map((n) => path.join(work, n)));
  const got = await hashing;
  for (const f of unknown) {
    const h = got.get(f);
    if (typeof h === 'string') {
      hashes.remember(f, h, before.get(f) as ReturnType<typeof fileIdentity>);
      known.set(f, h);
    }
  }
  try {
    hashes.save();
  } catch {
    // not remembered: the next load hashes again
  }
  const dropWork = (): void => fs.rmSync(work, { recursive: true, force: true });
  if (known.size !== files.length) return builtFiles(work, b, 'error', 'could not hash the checkpoint', undefined, dropWork);
  const key = shardKey(partsFor(known));
  // The same content may already be cached under another path (first sight of a copied checkpoint).
  const existing = loadEntry(cache, key, ckpt.dir);
  if (existing !== null) {
    dropWork();
    return existing;
  }
  const links: Record<string, string> = {};
  for (const [loc, file] of b.links) links[loc] = path.relative(ckpt.dir, file);
  const parts = partsFor(known);
  // Stored once onnxruntime has loaded; the session keeps its mappings when the folder moves.
  return builtFiles(work, b, 'built', undefined, key, async (loaded) => {
    try {
      if (loaded) {
        const meta = { key, parts, links, attention: b.attention, weightBytes: b.weightBytes, lookupBytes: b.lookupBytes };
        if (cache.commit(work, meta, names, await entryHashes, new Set(b.links.keys()))) cache.evict(key);
      }
    } catch {
      // not stored: the next load builds again
    } finally {
      dropWork(); // a no-op once the folder has become the entry
    }
  });
}

function builtFiles(work: string, b: Built, cache: CacheState, cacheError: string | undefined, key: string | undefined, done: (loaded: boolean) => void | Promise<void>): ShardFiles {
  return {
    modelPath: path.join(work, 'model.onnx'),
    attention: b.attention,
    weightBytes: b.weightBytes,
    lookupBytes: b.lookupBytes,
    cache,
    ...(cacheError !== undefined ? { cacheError } : {}),
    ...(key !== undefined ? { key } : {}),
    finish: async (loaded) => {
      await done(loaded);
      return true;
    },
  };
}

/** A cache hit ready to load, or null (no entry, or one that cannot be linked: removed). */
function loadEntry(cache: ShardCache, key: string, checkpointDir: string): ShardFiles | null {
  const m = cache.read(key);
  if (m === null) return null;
  let load: string;
  try {
    load = cache.linkForLoad(m, checkpointDir);
  } catch {
    cache.remove(key);
    return null;
  }
  cache.touch(key);
  // Hashing starts now, in a worker thread, and overlaps onnxruntime's load.
  const verified = cache.verify(m);
  return {
    modelPath: path.join(load, 'model.onnx'),
    attention: m.attention,
    weightBytes: m.weightBytes,
    lookupBytes: m.lookupBytes,
    cache: 'hit',
    key,
    kvDtype: m.parts.build.kvDtype,
    finish: async (loaded) => {
      fs.rmSync(load, { recursive: true, force: true });
      const ok = loaded && (await verified);
      if (!ok) cache.remove(key);
      return ok;
    },
  };
}

/**
 * A shard built elsewhere and already in this cache (a worker's int4 shard fetched from the
 * gateway, issue 20): its files ready to load, no checkpoint and no quantizer involved. null when
 * the entry is missing or not whole. finish() as for a hit: a bad entry is removed.
 */
export function prebuiltShardFiles(cacheDir: string, key: string): ShardFiles | null {
  const cache = ShardCache.open(cacheDir);
  const m = cache.read(key);
  // Self-contained entries only: nothing to link from a checkpoint this machine does not have.
  if (m === null || Object.keys(m.links).length > 0) return null;
  return loadEntry(cache, key, cacheDir);
}
