// createShardEngine: a layer range of a checkpoint running in its own worker thread.
// The main side keeps a mirror of every sequence's KV length so kvLength()/kvBytes() answer
// synchronously and a step at the wrong position is refused before it reaches the thread.

import { HearthError, type ErrorCode } from '../errors/index.ts';
import type { ModelConfig } from '../model/types.ts';
import { buffersOf, type FromThread, type ThreadInit, type ToThread, type WireError } from './engine-protocol.ts';
import type { ShardInfo, ShardSessionOptions } from './shard-session.ts';
import { spawnThread } from './spawn-thread.ts';
import type { ShardEngine, StageItem, StageResult, StageSpec } from './types.ts';
import type { Worker } from 'node:worker_threads';

export interface EngineOptions extends ShardSessionOptions {
  /**
   * Bytes this node offers (its --memory). What its weights leave of it is the KV budget: a step
   * whose KV would pass it is refused with HEARTH_ERR_KV_FULL before it runs, so a long sequence
   * gets a clear error instead of the process growing until the OOM killer ends every stream.
   * Absent: no bound (one process, tests, benchmarks).
   */
  readonly memoryBytes?: number;
  /** The KV budget itself, as the planner worked it out from the same offer (the offer less this
   *  stage's weights as it counts them: prepacked block sums and the runtime's overhead in, a
   *  mapped lookup table only by the pages its tokens touch). Wins over memoryBytes. */
  readonly kvBudgetBytes?: number;
}

/** The sequences a HEARTH_ERR_KV_FULL refusal names: the rest of that batch may run again. */
const KV_FULL_SEQS = Symbol('kvFullSeqs');

/** For the stage runner: the sequences a refused batch could not grow (null: not a KV refusal). */
export function kvFullSequences(e: unknown): ReadonlySet<string> | null {
  const s = (e as { [KV_FULL_SEQS]?: ReadonlySet<string> } | null)?.[KV_FULL_SEQS];
  return s instanceof Set ? s : null;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

function toError(w: WireError): Error {
  if (w.code === null) return new HearthError('HEARTH_ERR_ENGINE', [w.message]);
  const e = new HearthError(w.code as ErrorCode);
  e.message = w.message;
  return e;
}

export class OnnxShardEngine implements ShardEngine {
  readonly first: boolean;
  readonly last: boolean;
  readonly config: ModelConfig;
  private readonly lens = new Map<string, number>();
  private readonly pending = new Map<number, Pending>();
  private readonly bytesPerPosition: number;
  /** Whether kvBudget came from the plan (EngineOptions.kvBudgetBytes). */
  private readonly fromPlan: boolean;
  /** KV bytes this stage may hold (see EngineOptions.memoryBytes); null = unbounded. */
  private readonly kvBudget: number | null;
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly spec: StageSpec,
    readonly info: ShardInfo,
    private readonly memoryBytes: number | null = null,
    kvBudgetBytes: number | null = null,
  ) {
    this.config = info.config;
    this.fromPlan = kvBudgetBytes !== null;
    // The rotary tables were sized from the same budget (ropeRows) and come out of it.
    this.kvBudget = kvBudgetBytes !== null ? Math.max(0, kvBudgetBytes - info.ropeBytes)
      : memoryBytes === null ? null : Math.max(0, memoryBytes - info.weightBytes - info.lookupBytes - info.ropeBytes);
    this.first = spec.start === 0;
    this.last = spec.end === info.config.numLayers;
    this.bytesPerPosition = (spec.end - spec.start) * 2 * info.config.numKvHeads * info.config.headDim * (info.kvDtype === 'float16' ? 2 : 4);
    worker.on('message', (m: FromThread) => this.onMessage(m));
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', () => this.failAll(new HearthError('HEARTH_ERR_ENGINE', ['engine thread exited'])));
  }

  static async create(dir: string, spec: StageSpec, opts: EngineOptions = {}): Promise<OnnxShardEngine> {
    const init: ThreadInit = { dir, spec, opts };
    const worker = spawnThread(new URL('./engine-thread.ts', import.meta.url), { workerData: init });
    const info = await new Promise<ShardInfo>((resolve, reject) => {
      const onMsg = (m: FromThread): void => {
        if (m.op === 'ready') resolve(m.info);
        else if (m.op === 'init-error') reject(toError(m.error));
        else return;
        worker.off('message', onMsg);
        worker.off('error', onErr);
      };
      const onErr = (e: Error): void => reject(new HearthError('HEARTH_ERR_ENGINE', [`engine thread failed to start: ${e.message}`], { cause: e }));
      worker.on('message', onMsg);
      worker.once('error', onErr);
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    return new OnnxShardEngine(worker, spec, info, opts.memoryBytes ?? null, opts.kvBudgetBytes ?? null);
  }

  /**
   * Items of different sequences with n == 1 run as one batch. The buffers under `hidden` are
   * transferred to the engine thread (the caller's arrays are detached afterwards) when they are
   * whole buffers or came out of another engine; anything else is copied.
   */
  run(items: readonly StageItem[]): Promise<StageResult[]> {
    if (this.closed) return Promise.reject(new HearthError('HEARTH_ERR_ENGINE', ['engine is closed']));
    // Check positions against the mirror first, as the thread will apply them, in order.
    const next = new Map<string, number>();
    const lenOf = (s: string): number => next.get(s) ?? this.lens.get(s) ?? 0;
    // KV budget: positions held by every sequence once this call's items ran. An item that would
    // take it past the budget is refused alone (its sequence named in the error); the others stay
    // within it and the stage runner runs them again without it.
    let held = this.kvBudget === null ? 0 : this.kvBytes() / this.bytesPerPosition;
    const full = new Set<string>();
    let refused: HearthError | null = null;
    for (const it of items) {
      if (this.kvBudget !== null) {
        if (full.has(it.seq)) continue;
        // After the item the sequence holds pos + n positions (a fork or a rewind replaces what it held).
        const grow = it.pos + it.n - lenOf(it.seq);
        if (grow > 0 && (held + grow) * this.bytesPerPosition > this.kvBudget) {
          full.add(it.seq);
          refused ??= new HearthError('HEARTH_ERR_KV_FULL', [
            it.seq, it.pos + it.n, `[${this.spec.start}, ${this.spec.end})`,
            `${mib(this.kvBudget)} for KV: ${mib(this.memoryBytes ?? 0)} offered less ${this.fromPlan ? 'the plan\'s figure for this stage\'s weights and runtime' : `${mib(this.info.weightBytes + this.info.lookupBytes)} of weights`}; ${mib(held * this.bytesPerPosition)} already held by ${this.lens.size} sequence(s)`,
          ]);
          continue;
        }
        held += grow;
      }
      if (it.fork) {
        const have = lenOf(it.fork.from);
        if (it.fork.len > have) return Promise.reject(new HearthError('HEARTH_ERR_KV_POSITION', [it.fork.from, it.fork.len, have]));
        next.set(it.seq, it.fork.len);
      }
      const have = lenOf(it.seq);
      if (it.pos !== have && !(it.rewind === true && it.pos < have)) return Promise.reject(new HearthError('HEARTH_ERR_KV_POSITION', [it.seq, it.pos, have]));
      if (!(it.n >= 1) || it.tokens.length < it.n) return Promise.reject(new HearthError('HEARTH_ERR_ENGINE', [`item ${it.seq}: n=${it.n} with ${it.tokens.length} tokens`]));
      if (!this.first && it.hidden?.length !== it.n * this.config.hiddenSize) {
        return Promise.reject(new HearthError('HEARTH_ERR_ENGINE', [`item ${it.seq}: hidden must be [${it.n}, ${this.config.hiddenSize}]`]));
      }
      // The rotary tables end at the context served: a position past them has no rotation (the
      // scheduler keeps sequences inside contextLength; this stops anything that does not).
      if (it.pos + it.n > this.info.positions) return Promise.reject(new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [this.info.positions, it.pos + it.n, ` (this stage holds ${this.info.positions} positions: the context served, or what its memory holds)`]));
      next.set(it.seq, it.pos + it.n); // pos < have only when rewinding
    }
    if (refused !== null) return Promise.reject(Object.assign(refused, { [KV_FULL_SEQS]: full }));
    for (const [s, l] of next) this.lens.set(s, l);
    const id = this.nextId++;
    // Transfer only buffers an item's hidden covers whole and that came out of an engine: a batched
    // step returns every item's hidden as a view of ONE buffer, and detaching it for one item would
    // leave the other items (still queued for this stage) with empty arrays. Views are copied.
    const transfer = buffersOf(items.map((it) => it.hidden)).filter((b) => OWN.has(b) && items.some((it) => it.hidden?.buffer === b && it.hidden.byteOffset === 0 && it.hidden.byteLength === b.byteLength));
    return this.call<StageResult[]>(id, { op: 'run', id, items }, transfer).then((results) => {
      for (const r of results) {
        const a = r.hidden ?? r.logits;
        if (a && a.buffer instanceof ArrayBuffer) OWN.add(a.buffer);
      }
      return results;
    });
  }

  free(seq: string): void {
    if (this.closed) return;
    this.lens.delete(seq);
    this.worker.postMessage({ op: 'free', seq } satisfies ToThread);
  }

  kvLength(seq: string): number {
    return this.lens.get(seq) ?? 0;
  }

  kvBytes(): number {
    let n = 0;
    for (const l of this.lens.values()) n += l;
    return n * this.bytesPerPosition;
  }

  weightBytes(): number {
    // The rotary tables are held beside the weights for as long as the stage runs.
    return this.info.weightBytes + this.info.ropeBytes;
  }

  /** Ends onnxruntime profiling (engine created with profile: true); resolves to the trace file. */
  endProfiling(): Promise<string | null> {
    const id = this.nextId++;
    return this.call<string | null>(id, { op: 'profile', id });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const id = this.nextId++;
    await this.call(id, { op: 'close', id }).catch(() => undefined);
    await this.worker.terminate();
  }

  private call<T>(id: number, msg: ToThread, transfer: ArrayBuffer[] = []): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      try {
        this.worker.postMessage(msg, transfer);
      } catch {
        this.worker.postMessage(msg); // e.g. a pooled Buffer that cannot be transferred: copy it
      }
    });
  }

  private onMessage(m: FromThread): void {
    if (m.op === 'ready' || m.op === 'init-error') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.op === 'result') p.resolve(m.results);
    else if (m.op === 'profile') p.resolve(m.file);
    else if (m.op === 'closed') p.resolve(undefined);
    else {
      for (const [s, l] of m.lens) {
        if (l === 0) this.lens.delete(s);
        else this.lens.set(s, l);
      }
      p.reject(toError(m.error));
    }
  }

  private failAll(e: unknown): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** Buffers that came out of an engine: safe to move into the next one without a copy. */
const OWN = new WeakSet<ArrayBuffer>();

/** Opens the checkpoint's layers [spec.start, spec.end) in a worker thread (see OnnxShardEngine). */
export function createShardEngine(dir: string, spec: StageSpec, opts: EngineOptions = {}): Promise<OnnxShardEngine> {
  return OnnxShardEngine.create(dir, spec, opts);
}
