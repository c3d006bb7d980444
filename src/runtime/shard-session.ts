// One onnxruntime session for a layer range plus that range's KV cache. Runs wherever it is created;
// the engine puts it in a worker thread because session.run blocks the event loop.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { HearthError } from '../errors/index.ts';
import { openCheckpoint, parseConfig } from '../model/index.ts';
import type { ModelConfig } from '../model/types.ts';
import { ATTN_INPUTS, IO, KV_DTYPES, ROPE_INPUTS, ropeTables, type AttentionKind, type KvDtype } from '../model/onnx/index.ts';
import { ropeBytesPerPosition, ropeRows } from './rope-rows.ts';
import { defaultVocabBits as defaultVocabBitsOf } from '../model/quant-int8.ts';
import { defaultInt4BlockSize } from '../model/index.ts';
import { DT, GraphBuilder } from '../model/onnx/graph.ts';
import { KvStore, padRows, sliceRow, type KvArray } from './kv-store.ts';
import { resolveShardCacheDir } from './shard-cache.ts';
import { TableLookup } from './table-lookup.ts';
import { prebuiltShardFiles, prepareShardFiles, type CacheState, type ShardFiles } from './shard-files.ts';
import type { StageItem, StageResult, StageSpec } from './types.ts';

export interface ShardSessionOptions {
  /** Attention implementation; 'auto' = GroupQueryAttention when headDim % 16 == 0. */
  readonly attention?: AttentionKind | 'auto';
  /** MatMulNBits accuracy_level for int4 (default 4: int8 activations). */
  readonly accuracyLevel?: number;
  /** Context served: rotary table rows, and so the positions a sequence may reach (default and at
   *  most: the model's max_position_embeddings; fewer when the KV budget holds fewer, see ropeRows). */
  readonly maxPositions?: number;
  /** Bytes this stage may hold in KV and rotary tables together (the plan's allowance; see
   *  EngineOptions.kvBudgetBytes). Wins over memoryBytes. */
  readonly kvBudgetBytes?: number;
  /** Bytes the node offers (see EngineOptions.memoryBytes): less the weights, the same budget. */
  readonly memoryBytes?: number;
  /** Write an onnxruntime per-op profile (see endProfiling). */
  readonly profile?: boolean;
  /** Let onnxruntime repack constant weights for its kernels (default true; false = use mapped weights in place: instant load, slower fp32 matmuls). */
  readonly prepack?: boolean;
  /** Use onnxruntime's CPU memory arena (default true: see sessionOptions). */
  readonly memArena?: boolean;
  /** Attention scores per layer one prompt step may hold before a chunk runs in parts (default SCORE_BUDGET). */
  readonly scoreBudget?: number;
  /** KV bytes a decode batch must save before it is split by sequence length (default SPLIT_BYTES). */
  readonly splitBytes?: number;
  /** Rows per lm_head slice (tests use small slices to cover the sliced head). */
  readonly headSliceRows?: number;
  /** Where an uncached build is staged while onnxruntime loads it (default: os.tmpdir()). */
  readonly scratchDir?: string;
  /**
   * Folder of the built-shard cache (see shard-cache.ts); null = no cache. Default:
   * resolveShardCacheDir() ($HEARTH_CACHE_DIR, else ~/.cache/hearth/shards).
   */
  readonly cacheDir?: string | null;
  /** KV cache element type of the fused attention path (default float32). */
  readonly kvDtype?: KvDtype;
  /** int4 block size along K (default 32). */
  readonly int4Block?: number;
  /** int4 models: bits of the embedding table and lm_head (default defaultVocabBits()). */
  readonly vocabBits?: 4 | 8;
  /** int4 models: uint4 zero points per block (asymmetric; default defaultInt4ZeroPoints()). */
  readonly int4ZeroPoints?: boolean;
  /**
   * Let onnxruntime's intra-op threads spin between kernels instead of sleeping. Only for a stage
   * that has its cores to itself: spinning stages that share cores starve each other. Default: see spins().
   */
  readonly spin?: boolean;
  /**
   * Load a shard built elsewhere instead of building one from `dir`'s weights (issue 20: the
   * gateway quantizes a range once, workers fetch it as int4). `dir` then needs only config.json;
   * the graph and weights are the cache entry `key` in `cacheDir` (see prebuiltShardFiles).
   */
  readonly prebuilt?: PrebuiltShard;
}

/** A self-contained shard cache entry and what the config cannot say without the weights. */
export interface PrebuiltShard {
  readonly cacheDir: string;
  readonly key: string;
  /** Whether the head is the embedding (config.json may not say; the weights would). */
  readonly tieEmbeddings: boolean | null;
}

/** The model's config for a prebuilt shard: config.json beside it, the head as the gateway saw it. */
function prebuiltConfig(dir: string, pre: PrebuiltShard): ModelConfig {
  const read = (name: string): string | null => {
    try {
      return fs.readFileSync(path.join(dir, name), 'utf8');
    } catch {
      return null;
    }
  };
  const text = read('config.json');
  if (text === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [dir]);
  return parseConfig(text, read('generation_config.json'), { hasLmHead: pre.tieEmbeddings === false });
}

export interface ShardInfo {
  readonly config: ModelConfig;
  readonly attention: AttentionKind;
  readonly kvDtype: KvDtype;
  /** Weights every step reads (resident while serving). */
  readonly weightBytes: number;
  /** Lookup-only embedding table mapped from the checkpoint (only seen rows are paged in). */
  readonly lookupBytes: number;
  /** Positions the rotary tables cover: a step past them is refused (see ropeRows). */
  readonly positions: number;
  /** Bytes of those tables (fed to every step; not in weightBytes). */
  readonly ropeBytes: number;
  /** Time to obtain the graph and weights (build, or cache lookup). */
  readonly buildMs: number;
  readonly sessionMs: number;
  /** hit: loaded from the shard cache; built: built and stored; off: no cache; error: cache unusable. */
  readonly cache: CacheState;
  readonly cacheError?: string;
}

type Feeds = Record<string, ort.Tensor>;

/** Attention scores per layer one prompt step may hold (see partSize): 4M fp32 = 16 MB. */
const SCORE_BUDGET = 4 * 2 ** 20;
/** KV bytes a decode batch must stop reading before it is split by length (see byLength). */
const SPLIT_BYTES = 32 * 2 ** 20;

// onnxruntime-node 1.30 cannot take float16 *inputs* where the runtime has Float16Array (Node >= 24):
// session.run fails with "not enough space: expected N, got 0" for Uint16Array and Float16Array alike
// (outputs come back as Float16Array). An fp16 KV cache feeds float16 inputs every step, so there it
// is refused with the reason rather than failing on the first token.
const float16InputsBroken = typeof (globalThis as { Float16Array?: unknown }).Float16Array === 'function';
/** fp16 outputs arrive as Float16Array on such runtimes: keep their bits. */
function kvBits(d: ArrayBufferView): KvArray {
  if (d instanceof Float32Array || d instanceof Uint16Array) return d;
  return new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2);
}

function providerError(provider: string, msg: string): HearthError {
  return new HearthError('HEARTH_ERR_PROVIDER', [
    provider,
    `onnxruntime-node could not create it (${msg.split('\n')[0]}). The npm package ships the CPU provider only; ` +
      'CUDA needs the libraries its install script downloads (CUDA 12 + cuDNN 9 and the onnxruntime CUDA provider), ' +
      'which this install skipped. Use provider "cpu".',
  ]);
}

/** Fails fast, before any weights are read, when onnxruntime cannot create the provider. */
export async function probeProvider(provider: string): Promise<void> {
  // The smallest valid model: y = Identity(x).
  const g = new GraphBuilder();
  g.input('x', DT.float, [1]);
  g.node('Identity', ['x'], ['y']);
  g.output('y', DT.float, [1]);
  const { model } = g.finish('probe');
  try {
    const s = await ort.InferenceSession.create(model, { executionProviders: [provider] });
    await s.release();
  } catch (e) {
    throw providerError(provider, (e as Error).message ?? String(e));
  }
}

/**
 * int4 block size when the caller names none: HEARTH_INT4_BLOCK, else 128. Measured (issue 25,
 * `hearth eval`, docs/performance.md "Quality"): the only setting whose KL divergence from fp32 is
 * no worse than llama.cpp Q4_0's on the real models in ../shared/models is block 32 with the 8-bit
 * embedding/head (HEARTH_INT4_BLOCK=32 HEARTH_VOCAB_BITS=8, and the least-squares refit every block
 * gets); blocks of 64 or 128 stay 25-70% above it. It is not the default because it costs what
 * issue 20 needs: onnxruntime's prepacked block sums (4 bytes a block) and the 8-bit head make a
 * Llama-3.1-8B shape's stages 25% larger (2 x 60% of its int4 weights no longer hold it; a split
 * tied 3B holds its 8-bit head again on the last stage), and block 32 decodes 32 tok/s against
 * block 128's 44-48 on the 0.5B shape (2 threads, one process; 64 → 40-44).
 */
export function defaultInt4Block(): number {
  return defaultInt4BlockSize();
}

/**
 * KV element type when the caller names none: HEARTH_KV_DTYPE (float32 | float16), else float32.
 * fp16 halves the cache but is slower on CPU (the graph casts the whole past to fp32 every step):
 * 0.5B int4 shape at 8k positions, decode 12.6-13.2 tok/s fp16 vs 17.1-17.4 fp32.
 */
export function defaultKvDtype(): KvDtype {
  const env = process.env['HEARTH_KV_DTYPE'];
  return (KV_DTYPES as readonly string[]).includes(env ?? '') ? (env as KvDtype) : 'float32';
}

/**
 * Whether the intra-op pool spins: explicitly, or by default when this stage was given every core
 * of the machine (hearth up with one local worker, a bench or generate in one process), so nothing
 * else of ours competes for them. HEARTH_SPIN=0/1 overrides the default. Measured on the 0.5B int4
 * shape, 2 threads, one process: decode +15% (44-48 -> 50-57 tok/s at 128 positions).
 */
function spins(spec: StageSpec, opts: ShardSessionOptions): boolean {
  if (opts.spin !== undefined) return opts.spin;
  const env = process.env['HEARTH_SPIN'];
  if (env === '0' || env === '1') return env === '1';
  return spec.threads > 1 && spec.threads >= os.availableParallelism();
}

function sessionOptions(spec: StageSpec, opts: ShardSessionOptions, profileDir: string | null): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [spec.provider],
    intraOpNumThreads: Math.max(1, spec.threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Arena on. Without it every activation is a malloc/free, and glibc's per-thread heaps keep
    // what long prompts free in pieces they cannot return (its mmap threshold rises to the size of
    // the largest buffer freed, up to 32 MB): hearth bench, 0.5B int4, peak RSS at 2k / 8k context
    // 1232 / 1591 MiB without, 708 / 1047 with, 128 and 512 unchanged (526-571), speed unchanged.
    // The arena keeps the largest step's buffers, which prompt chunks in parts (see partSize) bound.
    // (MALLOC_ARENA_MAX=2 without it: 6.2 GiB at 8k; MALLOC_MMAP_THRESHOLD_=1 MiB: 954 MiB but
    // prefill at 8k ~2x slower, every large buffer faulted in afresh.)
    enableCpuMemArena: opts.memArena !== false,
    graphOptimizationLevel: 'all',
    extra: {
      session: {
        // Stages that share cores with each other must not spin (a spinning pool halves a split's
        // speed); a stage alone on its cores may (see ShardSessionOptions.spin).
        intra_op: { allow_spinning: spins(spec, opts) ? '1' : '0' },
        inter_op: { allow_spinning: '0' },
        // Prepacking copies each matrix into the layout MLAS's kernels stream (measured on one
        // 4864x896 fp32 Gemm at M=1: 24 GB/s packed vs 14 GB/s in place), and onnxruntime then
        // drops the mapped source. int4 needs it for MatMulNBits' int8 (VNNI) kernels.
        disable_prepacking: opts.prepack === false ? '1' : '0',
      },
    },
    ...(profileDir ? { enableProfiling: true, profileFilePrefix: path.join(profileDir, 'ort') } : {}),
  };
}

/** The prebuilt entry's files; a missing one (or one a failed load removed) is a clear error. */
function openPrebuilt(pre: PrebuiltShard, spec: StageSpec): ShardFiles {
  const files = prebuiltShardFiles(pre.cacheDir, pre.key);
  if (files === null) throw new HearthError('HEARTH_ERR_ENGINE', [`layers [${spec.start}, ${spec.end}): the prebuilt shard ${pre.key} is not whole in ${pre.cacheDir}`]);
  return files;
}

export class ShardSession {
  readonly first: boolean;
  readonly last: boolean;
  readonly kv: KvStore;
  private profileDir: string | null = null;
  private scoreBudget = SCORE_BUDGET;
  private scoreBudgetSet = false;
  private splitBytes = SPLIT_BYTES;
  /** The rotary tables, fed to every run (see ROPE_INPUTS). */
  private rope: Feeds = {};
  /** session.run calls so far. */
  runs = 0;
  /** A first stage whose graph reads hidden_in: its token lookup, done here (see table-lookup.ts). */
  private lookup: TableLookup | null = null;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly spec: StageSpec,
    readonly info: ShardInfo,
    profileDir: string | null,
  ) {
    this.first = spec.start === 0;
    this.last = spec.end === info.config.numLayers;
    this.kv = new KvStore({
      layers: spec.end - spec.start,
      kvHeads: info.config.numKvHeads,
      headDim: info.config.headDim,
      layout: info.attention === 'fused' ? 'position' : 'head',
      half: info.kvDtype === 'float16',
      maxPositions: info.positions,
    });
    this.profileDir = profileDir;
  }

  static async create(dir: string, spec: StageSpec, opts: ShardSessionOptions = {}): Promise<ShardSession> {
    const t0 = performance.now();
    if (spec.provider !== 'cpu') await probeProvider(spec.provider);
    const pre = opts.prebuilt;
    const ckpt = pre === undefined ? openCheckpoint(dir, { range: [spec.start, spec.end] }) : null;
    const config = ckpt !== null ? ckpt.config : prebuiltConfig(dir, pre as PrebuiltShard);
    const prep = {
      cacheDir: opts.cacheDir === undefined ? resolveShardCacheDir() : opts.cacheDir,
      // The shard's own cores quantize its weights (stages loading side by side keep to theirs).
      buildThreads: spec.threads,
      ...(opts.scratchDir !== undefined ? { scratchDir: opts.scratchDir } : {}),
      ...(opts.attention !== undefined ? { attention: opts.attention } : {}),
      ...(opts.accuracyLevel !== undefined ? { accuracyLevel: opts.accuracyLevel } : {}),
      ...(opts.maxPositions !== undefined ? { maxPositions: opts.maxPositions } : {}),
      ...(opts.headSliceRows !== undefined ? { headSliceRows: opts.headSliceRows } : {}),
      int4Block: opts.int4Block ?? defaultInt4Block(),
      vocabBits: opts.vocabBits ?? defaultVocabBitsOf(),
      ...(opts.int4ZeroPoints !== undefined ? { int4ZeroPoints: opts.int4ZeroPoints } : {}),
      kvDtype: opts.kvDtype ?? defaultKvDtype(),
    };
    if (prep.kvDtype === 'float16' && float16InputsBroken && pre === undefined) {
      ckpt?.close();
      throw new HearthError('HEARTH_ERR_ENGINE', [
        `an fp16 KV cache needs float16 inputs, which onnxruntime-node cannot take on Node ${process.versions.node} (it has Float16Array); use HEARTH_KV_DTYPE=float32 or Node 20/22`,
      ]);
    }
    try {
      const profileDir = opts.profile ? fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-prof-')) : null;
      // A cache entry that fails to load or whose hashes do not match is removed by finish();
      // the second pass then builds afresh.
      for (let attempt = 0; ; attempt++) {
        const files = pre !== undefined ? openPrebuilt(pre, spec) : await prepareShardFiles(ckpt as NonNullable<typeof ckpt>, spec, prep);
        const t1 = performance.now();
        let session: ort.InferenceSession;
        try {
          session = await ort.InferenceSession.create(files.modelPath, sessionOptions(spec, opts, profileDir));
        } catch (e) {
          const retry = !(await files.finish(false)) && attempt === 0;
          if (retry) continue;
          const msg = (e as Error).message ?? String(e);
          if (spec.provider !== 'cpu') throw providerError(spec.provider, msg);
          throw new HearthError('HEARTH_ERR_ENGINE', [`session for layers [${spec.start}, ${spec.end}): ${msg}`], { cause: e });
        }
        // Opened before finish(): an uncached build's folder goes once onnxruntime has loaded it.
        let lookup: TableLookup | null;
        try {
          lookup = spec.start === 0 && !session.inputNames.includes(IO.inputIds) ? TableLookup.open(files.modelPath) : null;
        } catch (e) {
          await session.release();
          await files.finish(false);
          throw new HearthError('HEARTH_ERR_ENGINE', [`token lookup for layers [${spec.start}, ${spec.end}): ${(e as Error).message}`], { cause: e });
        }
        if (!(await files.finish(true)) && attempt === 0) {
          lookup?.close();
          await session.release();
          continue;
        }
        const t2 = performance.now();
        // A prebuilt graph's KV type is the one it was built for.
        const kvDtype = (files.kvDtype ?? prep.kvDtype) as KvDtype;
        const kvElement = files.attention === 'fused' && kvDtype === 'float16' ? 2 : 4;
        const budget = opts.kvBudgetBytes ?? (opts.memoryBytes === undefined ? null : opts.memoryBytes - files.weightBytes - files.lookupBytes);
        const positions = ropeRows(config, opts.maxPositions, budget, spec.end - spec.start, kvElement);
        const info: ShardInfo = {
          config,
          attention: files.attention,
          kvDtype: files.attention === 'fused' ? kvDtype : 'float32',
          positions,
          ropeBytes: positions * ropeBytesPerPosition(config),
          weightBytes: files.weightBytes,
          lookupBytes: files.lookupBytes,
          buildMs: t1 - t0,
          sessionMs: t2 - t1,
          cache: files.cache,
          ...(files.cacheError !== undefined ? { cacheError: files.cacheError } : {}),
        };
        const shard = new ShardSession(session, spec, info, profileDir);
        shard.lookup = lookup;
        const { cos, sin } = ropeTables(config, positions);
        const half = config.headDim / 2;
        shard.rope = { [ROPE_INPUTS.cos]: new ort.Tensor('float32', cos, [positions, half]), [ROPE_INPUTS.sin]: new ort.Tensor('float32', sin, [positions, half]) };
        if (opts.scoreBudget !== undefined) {
          shard.scoreBudget = Math.max(1, opts.scoreBudget);
          shard.scoreBudgetSet = true;
        }
        if (opts.splitBytes !== undefined) shard.splitBytes = Math.max(0, opts.splitBytes);
        return shard;
      }
    } finally {
      ckpt?.close();
    }
  }
  /**
   * Runs items: consecutive single-token items of distinct sequences go as one batch, anything
   * else one by one. Results come back in item order.
   */
  async run(items: readonly StageItem[]): Promise<StageResult[]> {
    const results: StageResult[] = new Array(items.length);
    let batch: number[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const idx = batch;
      batch = [];
      for (const part of this.byLength(idx.map((i) => items[i] as StageItem))) {
        const out = await this.step(part.map((j) => items[idx[j] as number] as StageItem));
        part.forEach((j, k) => (results[idx[j] as number] = out[k] as StageResult));
      }
    };
    for (let i = 0; i < items.length; i++) {
      const it = items[i] as StageItem;
      if (it.fork) {
        await flush();
        this.kv.free(it.seq);
        if (it.fork.len > 0) this.kv.fork(it.seq, it.fork.from, it.fork.len);
      }
      if (it.rewind === true && it.pos < this.kv.length(it.seq)) {
        await flush();
        this.kv.truncate(it.seq, it.pos);
      }
      const rows = it.logitRows ?? 1;
      if (!(Number.isInteger(rows) && rows >= 1 && rows <= it.n)) throw new HearthError('HEARTH_ERR_ENGINE', [`item ${it.seq}: logitRows ${rows} outside 1..${it.n}`]);
      if (it.exact === true && it.n > 1 && !this.exactChunks) {
        await flush();
        results[i] = await this.stepByStep(it);
        continue;
      }
      const part = this.partSize(it);
      if (part < it.n) {
        await flush();
        results[i] = await this.stepInParts(it, part);
        continue;
      }
      const single = it.n === 1 && !batch.some((j) => (items[j] as StageItem).seq === it.seq);
      if (!single) await flush();
      batch.push(i);
      if (!single) await flush();
    }
    await flush();
    return results;
  }

  /**
   * Whether one session.run computes an exact chunk bit for bit as decode would: the fused graph's
   * exact branch does for its attention, fp32 projections give every row the same bits whatever
   * the row count, and so do int4 ones since the graph evens out odd row counts (build-shard.ts:
   * MatMulNBits at blocks over 32 rounds the last row of an odd count apart). plain/gqa attention
   * have no exact branch: there an exact item runs as n one-position steps in this stage (the
   * speculative pass still costs one trip through the pipeline, just not one batched product).
   */
  private get exactChunks(): boolean {
    return this.info.attention === 'fused';
  }

  /** An exact item as n one-position steps; hidden rows (or the last logitRows logits) gathered. */
  private async stepByStep(it: StageItem): Promise<StageResult> {
    const rows = it.logitRows ?? 1;
    const h = this.info.config.hiddenSize;
    const width = this.last ? this.info.config.vocabSize : h;
    const keep = this.last ? rows : it.n;
    const out = new Float32Array(keep * width);
    const normed = this.last && it.wantHidden === true ? new Float32Array(it.n * h) : null;
    for (let k = 0; k < it.n; k++) {
      const one: StageItem = {
        seq: it.seq,
        pos: it.pos + k,
        n: 1,
        tokens: it.tokens.subarray(k, k + 1),
        ...(it.hidden !== undefined ? { hidden: it.hidden.subarray(k * h, (k + 1) * h) } : {}),
        ...(normed !== null ? { wantHidden: true } : {}),
      };
      const [r] = await this.step([one]);
      const row = k - (it.n - keep);
      if (row >= 0) out.set((this.last ? r?.logits : r?.hidden) ?? new Float32Array(0), row * width);
      if (normed !== null) normed.set(r?.hidden ?? new Float32Array(0), k * h);
    }
    return this.last ? { seq: it.seq, logits: out, ...(normed === null ? {} : { hidden: normed }) } : { seq: it.seq, hidden: out };
  }

  /**
   * Splits a decode batch (indices into `items`) by length where that reads less KV: a batch's
   * attention runs over its longest past for every row (shorter rows masked), so one 8k sequence
   * among fifteen of 200 makes all sixteen read 8k positions. Sorted by length, the batch is cut
   * where the KV the rows no longer read (bytes) outweighs one more session.run (splitBytes,
   * ~3 ms of a step's fixed cost at ~10 GB/s); int4 products cost about the same for the parts as
   * for the whole batch. At most one cut per pass, applied again to each side.
   */
  private byLength(items: readonly StageItem[]): number[][] {
    const order = items.map((_, i) => i);
    if (items.length < 2 || this.info.attention !== 'fused') return [order];
    const len = (i: number): number => this.kv.length((items[i] as StageItem).seq);
    order.sort((a, b) => len(a) - len(b));
    const perPosition = this.kv.bytesPerPosition;
    const cut = (ids: number[]): number[][] => {
      const n = ids.length;
      const top = len(ids[n - 1] as number);
      let best = 0;
      let saved = 0;
      for (let k = 1; k < n; k++) {
        // Rows [0, k) would read up to their own longest past instead of the batch's.
        const s = k * (top - len(ids[k - 1] as number)) * perPosition;
        if (s > saved) {
          saved = s;
          best = k;
        }
      }
      if (best === 0 || saved < this.splitBytes) return [ids];
      return [...cut(ids.slice(0, best)), ...cut(ids.slice(best))];
    };
    return cut(order);
  }

  /**
   * Positions of a prompt chunk one session.run takes at this context: at most SCORE_BUDGET
   * attention scores per layer (query heads x chunk x (past + chunk)). A chunk's transient
   * buffers (scores, mask, softmax) grow with chunk x context: 128 positions after 8k take ~60 MB
   * each per layer, and onnxruntime keeps its largest step's buffers. Exact items keep their own
   * path (their numerics do not depend on the split anyway).
   */
  private partSize(it: StageItem): number {
    if (it.n === 1 || it.exact === true) return it.n;
    // The fused graph's prefill scores the past in blocks (attention.ts KEY_BLOCK): its transient
    // memory does not grow with the context, so a chunk runs whole unless a caller set a budget.
    if (this.info.attention === 'fused' && !this.scoreBudgetSet) return it.n;
    const hq = this.info.config.numHeads;
    const total = it.pos + it.n;
    return Math.max(1, Math.min(it.n, Math.floor(this.scoreBudget / (hq * total))));
  }

  /** A chunk as consecutive steps of `size` positions; hidden rows (or the item's logitRows) gathered. */
  private async stepInParts(it: StageItem, size: number): Promise<StageResult> {
    const rows = it.logitRows ?? 1;
    const h = this.info.config.hiddenSize;
    const width = this.last ? this.info.config.vocabSize : h;
    const keep = this.last ? rows : it.n;
    const out = new Float32Array(keep * width);
    const normed = this.last && it.wantHidden === true ? new Float32Array(it.n * h) : null;
    for (let a = 0; a < it.n; a += size) {
      const m = Math.min(size, it.n - a);
      // The item's kept rows are its last `keep` positions; this part's share is a suffix of it.
      const mine = Math.max(0, a + m - Math.max(a, it.n - keep));
      const part: StageItem = {
        seq: it.seq,
        pos: it.pos + a,
        n: m,
        tokens: it.tokens.subarray(a, a + m),
        ...(it.hidden !== undefined ? { hidden: it.hidden.subarray(a * h, (a + m) * h) } : {}),
        ...(this.last && mine > 1 ? { logitRows: mine } : {}),
        ...(normed !== null ? { wantHidden: true } : {}),
      };
      const [r] = await this.step([part]);
      const got = (this.last ? r?.logits : r?.hidden) ?? new Float32Array(0);
      if (mine > 0) out.set(got.subarray(got.length - mine * width), (a + m - mine - (it.n - keep)) * width);
      if (normed !== null) normed.set(r?.hidden ?? new Float32Array(0), a * h);
    }
    return this.last ? { seq: it.seq, logits: out, ...(normed === null ? {} : { hidden: normed }) } : { seq: it.seq, hidden: out };
  }

  /** One session.run for items that all have the same n (a batch of decode steps, or one chunk). */
  private async step(items: readonly StageItem[]): Promise<StageResult[]> {
    const cfg = this.info.config;
    const b = items.length;
    const s = items[0]?.n ?? 0;
    const seqs = items.map((it) => this.kv.get(it.seq));
    seqs.forEach((kv, i) => {
      const it = items[i] as StageItem;
      if (it.pos !== kv.len) throw new HearthError('HEARTH_ERR_KV_POSITION', [it.seq, it.pos, kv.len]);
      if (it.n !== s || it.n < 1) throw new HearthError('HEARTH_ERR_ENGINE', [`batch items must share n (got ${it.n} and ${s})`]);
    });
    const lens = seqs.map((kv) => kv.len);
    const p = Math.max(...lens);
    const t = p + s;
    const { numKvHeads: hkv, headDim: d, hiddenSize: h } = cfg;
    const feeds: Feeds = {};
    if (this.first) {
      const ids = new Int32Array(b * s);
      items.forEach((it, i) => {
        if (it.tokens.length < s) throw new HearthError('HEARTH_ERR_ENGINE', [`item ${it.seq} has ${it.tokens.length} tokens for n=${s}`]);
        ids.set(it.tokens.subarray(0, s), i * s);
      });
      if (this.lookup === null) feeds[IO.inputIds] = new ort.Tensor('int32', ids, [b, s]);
      else {
        const hid = new Float32Array(b * s * h);
        this.lookup.lookup(ids, hid);
        feeds[IO.hiddenIn] = new ort.Tensor('float32', hid, [b, s, h]);
      }
    } else {
      let hid: Float32Array;
      if (b === 1) hid = (items[0] as StageItem).hidden ?? new Float32Array(0);
      else {
        hid = new Float32Array(b * s * h);
        items.forEach((it, i) => hid.set(it.hidden ?? new Float32Array(0), i * s * h));
      }
      if (hid.length !== b * s * h) throw new HearthError('HEARTH_ERR_ENGINE', [`hidden input has ${hid.length} values, expected ${b * s * h}`]);
      feeds[IO.hiddenIn] = new ort.Tensor('float32', hid, [b, s, h]);
    }
    if (this.last) feeds[IO.logitRows] = new ort.Tensor('int64', BigInt64Array.of(BigInt((items[0] as StageItem).logitRows ?? 1)), [1]);
    if (this.info.attention === 'fused') return this.stepFused(items, lens, feeds);
    if (this.info.attention === 'gqa') {
      feeds[ATTN_INPUTS.gqa.seqlensK] = new ort.Tensor('int32', Int32Array.from(lens, (l) => l + s - 1), [b]);
      feeds[ATTN_INPUTS.gqa.totalLen] = new ort.Tensor('int32', Int32Array.of(t), []);
    } else {
      const pos = new Int32Array(b * s);
      const mask = new Float32Array(b * s * t).fill(-Infinity);
      lens.forEach((len, i) => {
        for (let q = 0; q < s; q++) {
          pos[i * s + q] = len + q;
          const row = (i * s + q) * t;
          mask.fill(0, row, row + len); // own past
          mask.fill(0, row + p, row + p + q + 1); // causal over this step's tokens
        }
      });
      feeds[ATTN_INPUTS.plain.positionIds] = new ort.Tensor('int32', pos, [b, s]);
      feeds[ATTN_INPUTS.plain.mask] = new ort.Tensor('float32', mask, [b, 1, 1, s, t]);
    }
    const layers = this.kv.shape.layers;
    // One sequence on GroupQueryAttention: past and present are the same slab (appended in place).
    const shared = b === 1 && this.info.attention === 'gqa';
    const fetches: Record<string, ort.Tensor | null> = {};
    if (shared) {
      const kv = this.kv.reserve((items[0] as StageItem).seq, p + s);
      const dims = [1, hkv, kv.stride, d];
      for (let l = 0; l < layers; l++) {
        const k = new ort.Tensor('float32', kv.k[l] as Float32Array, dims);
        const v = new ort.Tensor('float32', kv.v[l] as Float32Array, dims);
        feeds[IO.pastKey(l)] = k;
        feeds[IO.pastValue(l)] = v;
        fetches[IO.presentKey(l)] = k;
        fetches[IO.presentValue(l)] = v;
      }
      fetches[this.last ? IO.logits : IO.hiddenOut] = null;
      if (this.last && items.some((it) => it.wantHidden === true)) fetches[IO.hiddenNormed] = null;
    } else {
      const strides = seqs.map((x) => x.stride);
      for (let l = 0; l < layers; l++) {
        const pk = b === 1 ? (seqs[0]?.k[l] as Float32Array) : padRows(seqs.map((x) => x.k[l] as Float32Array), lens, strides, this.kv.shape, p);
        const pv = b === 1 ? (seqs[0]?.v[l] as Float32Array) : padRows(seqs.map((x) => x.v[l] as Float32Array), lens, strides, this.kv.shape, p);
        if (b === 1 && (seqs[0]?.stride ?? 0) !== p) throw new Error('internal: plain-path KV must be exact-size');
        feeds[IO.pastKey(l)] = new ort.Tensor('float32', pk, [b, hkv, p, d]);
        feeds[IO.pastValue(l)] = new ort.Tensor('float32', pv, [b, hkv, p, d]);
      }
    }
    let out: ort.InferenceSession.ReturnType;
    try {
      this.runs++;
      Object.assign(feeds, this.rope);
      out = shared ? await this.session.run(feeds, fetches) : await this.session.run(feeds, this.fetchNames(items));
    } catch (e) {
      throw new HearthError('HEARTH_ERR_ENGINE', [(e as Error).message ?? String(e)], { cause: e });
    }
    // Keep the new KV: present row i holds [0, len_i) ∪ (gqa: [len_i, len_i+s) | plain: [p, p+s)).
    for (let l = 0; l < layers && !shared; l++) {
      const presK = out[IO.presentKey(l)]?.data as Float32Array;
      const presV = out[IO.presentValue(l)]?.data as Float32Array;
      const tp = presK.length / (b * hkv * d);
      seqs.forEach((kv, i) => {
        const len = lens[i] as number;
        if (b === 1 && tp === len + s) {
          kv.k[l] = presK;
          kv.v[l] = presV;
          kv.stride = tp;
          return;
        }
        const ranges: [number, number][] = this.info.attention === 'gqa' ? [[0, len + s]] : [[0, len], [p, p + s]];
        const rowSize = hkv * tp * d;
        kv.k[l] = sliceRow(presK.subarray(i * rowSize, (i + 1) * rowSize), this.kv.shape, tp, ranges);
        kv.v[l] = sliceRow(presV.subarray(i * rowSize, (i + 1) * rowSize), this.kv.shape, tp, ranges);
        kv.stride = len + s;
      });
    }
    seqs.forEach((kv) => (kv.len += s));
    return this.results(items, out, s);
  }

  /**
   * The fused path: past K/V go in as position-major [P, W, Hkv, D] views of the KV group the batch
   * lives in (kv-group.ts; nothing copied while a batch keeps its members), with the past mask hiding
   * each row's positions beyond its length; the step's own K/V come back as [W, S, Hkv, D] to write
   * after them. A group slot that no item uses this step runs a dummy row (all past masked, result
   * dropped). Restructured from the padded batch for issue 10: rows follow group slots, not items.
   */
  private async stepFused(items: readonly StageItem[], lens: readonly number[], feeds: Feeds): Promise<StageResult[]> {
    const cfg = this.info.config;
    const b = items.length;
    const s = (items[0] as StageItem).n;
    const { numKvHeads: hkv, headDim: d, hiddenSize: h } = cfg;
    const row = hkv * d;
    const kvType = this.info.kvDtype === 'float16' ? 'float16' : 'float32';
    const { group, slots } = this.kv.arrange(
      items.map((it) => it.seq),
      Math.max(...lens) + s,
    );
    const w = group.width;
    // itemAt[slot] = index of the item in that slot, -1 for an idle slot.
    const itemAt = new Int32Array(w).fill(-1);
    slots.forEach((slot, i) => (itemAt[slot] = i));
    if (w !== b || slots.some((slot, i) => slot !== i)) this.toSlotOrder(feeds, itemAt, s, h);
    const lenAt = (slot: number): number => {
      const i = itemAt[slot] as number;
      return i < 0 ? 0 : (lens[i] as number);
    };
    const pos = new BigInt64Array(w * s);
    for (let j = 0; j < w; j++) for (let q = 0; q < s; q++) pos[j * s + q] = BigInt(lenAt(j) + q);
    // An empty past is never fed (a zero-size matrix product faults in onnxruntime): one masked
    // position stands in for it.
    const p = Math.max(1, ...lens);
    const mask = new Float32Array(w * p);
    for (let j = 0; j < w; j++) mask.fill(-Infinity, j * p + lenAt(j), (j + 1) * p);
    feeds[ATTN_INPUTS.fused.positionIds] = new ort.Tensor('int64', pos, [w, s]);
    feeds[ATTN_INPUTS.fused.pastMask] = new ort.Tensor('float32', mask, [w, 1, 1, p]);
    const groups = cfg.numHeads / hkv;
    feeds[ATTN_INPUTS.fused.causal] = new ort.Tensor('float32', this.causal(s, groups), [groups * s, s]);
    feeds[ATTN_INPUTS.fused.exact] = new ort.Tensor('bool', Uint8Array.of(s > 1 && items[0]?.exact === true ? 1 : 0), [1]);
    const layers = this.kv.shape.layers;
    for (let l = 0; l < layers; l++) {
      feeds[IO.pastKey(l)] = new ort.Tensor(kvType, group.past('k', l, p), [p, w, hkv, d]);
      feeds[IO.pastValue(l)] = new ort.Tensor(kvType, group.past('v', l, p), [p, w, hkv, d]);
    }
    let out: ort.InferenceSession.ReturnType;
    this.runs++;
    try {
      Object.assign(feeds, this.rope);
      out = await this.session.run(feeds, this.fetchNames(items));
    } catch (e) {
      throw new HearthError('HEARTH_ERR_ENGINE', [(e as Error).message ?? String(e)], { cause: e });
    }
    for (let l = 0; l < layers; l++) {
      const nk = kvBits(out[IO.newKey(l)]?.data as ArrayBufferView);
      const nv = kvBits(out[IO.newValue(l)]?.data as ArrayBufferView);
      slots.forEach((slot, i) => {
        const at = slot * s * row;
        group.write(l, slot, lens[i] as number, nk.subarray(at, at + s * row), nv.subarray(at, at + s * row));
      });
    }
    items.forEach((it, i) => (this.kv.get(it.seq).len = (lens[i] as number) + s));
    if (w === b && slots.every((slot, i) => slot === i)) return this.results(items, out, s);
    // Rows are in slot order: ask for every row's result, keep the items'.
    const rows = Array.from(itemAt, (i) => items[i < 0 ? 0 : i] as StageItem);
    const res = this.results(rows, out, s);
    return slots.map((slot) => res[slot] as StageResult);
  }

  /** Reorders the step's input rows (ids or hidden states, built in item order) into group slots; idle slots get zeros. */
  private toSlotOrder(feeds: Feeds, itemAt: Int32Array, s: number, h: number): void {
    const w = itemAt.length;
    const ids = feeds[IO.inputIds];
    if (ids) {
      const src = ids.data as Int32Array;
      const out = new Int32Array(w * s);
      itemAt.forEach((i, j) => i >= 0 && out.set(src.subarray(i * s, (i + 1) * s), j * s));
      feeds[IO.inputIds] = new ort.Tensor('int32', out, [w, s]);
      return;
    }
    const src = feeds[IO.hiddenIn]?.data as Float32Array;
    const out = new Float32Array(w * s * h);
    itemAt.forEach((i, j) => i >= 0 && out.set(src.subarray(i * s * h, (i + 1) * s * h), j * s * h));
    feeds[IO.hiddenIn] = new ort.Tensor('float32', out, [w, s, h]);
  }

  private causalCache = new Map<number, Float32Array>();
  /** [groups * s, s]: row g*s+i is 0 up to column i, -inf after (kept per chunk size). */
  private causal(s: number, groups: number): Float32Array {
    let m = this.causalCache.get(s);
    if (!m) {
      m = new Float32Array(groups * s * s);
      for (let r = 0; r < groups * s; r++) m.fill(-Infinity, r * s + (r % s) + 1, (r + 1) * s);
      if (this.causalCache.size > 8) this.causalCache.clear();
      this.causalCache.set(s, m);
    }
    return m;
  }

  /**
   * The outputs a run copies out: all but the last stage's hidden_normed, which only embedding
   * steps (wantHidden) fetch. Graphs built before it existed do not list it.
   */
  private fetchNames(items: readonly StageItem[]): readonly string[] {
    const names = this.session.outputNames;
    if (!this.last || items.some((it) => it.wantHidden === true)) return names;
    return names.filter((n) => n !== IO.hiddenNormed);
  }

  private results(items: readonly StageItem[], out: ort.InferenceSession.ReturnType, s: number): StageResult[] {
    const h = this.info.config.hiddenSize;
    if (this.last) {
      const logits = out[IO.logits]?.data as Float32Array;
      const normed = out[IO.hiddenNormed]?.data as Float32Array | undefined;
      const v = this.info.config.vocabSize * ((items[0] as StageItem).logitRows ?? 1);
      return items.map((it, i) => ({
        seq: it.seq,
        logits: logits.subarray(i * v, (i + 1) * v),
        ...(it.wantHidden === true && normed !== undefined ? { hidden: normed.subarray(i * s * h, (i + 1) * s * h) } : {}),
      }));
    }
    const hidden = out[IO.hiddenOut]?.data as Float32Array;
    return items.map((it, i) => ({ seq: it.seq, hidden: hidden.subarray(i * s * h, (i + 1) * s * h) }));
  }

  /** Ends profiling and returns the path of onnxruntime's JSON trace (null when not profiling). */
  endProfiling(): string | null {
    if (!this.profileDir) return null;
    this.session.endProfiling();
    const dir = this.profileDir;
    const f = fs.readdirSync(dir).find((n) => n.endsWith('.json'));
    return f ? path.join(dir, f) : null;
  }

  async release(): Promise<void> {
    this.lookup?.close();
    this.lookup = null;
    await this.session.release();
  }
}
