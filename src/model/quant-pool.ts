// Quantizing a checkpoint to int4 is most of a cold load (the 0.5B: ~494M values, ~9 s on one
// core), and every row block is independent, so row chunks go to several threads. The graph
// builder asks for each matrix synchronously (one pass, weights streamed to files as it goes), so
// the asking thread takes chunks too and then waits with Atomics.wait for the chunks other threads
// hold; workers read their rows from the checkpoint file themselves and write into shared memory.
// Results are bit-identical to the single-threaded path: the same quantizeRowsInt4 on the same rows.

import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DType } from './types.ts';
import type { Int4Matrix } from './quant-int4.ts';

/** Rows [r0, r0 + rows) of a [*, cols] tensor stored in `file` at `byteStart`, into dst rows from dstRow. */
export interface RowChunk {
  readonly file: string;
  readonly byteStart: number;
  readonly dtype: DType;
  readonly r0: number;
  readonly rows: number;
  readonly dstRow: number;
}

export interface PoolJob {
  readonly cols: number;
  readonly blocks: number;
  readonly block: number;
  readonly packed: SharedArrayBuffer;
  readonly scales: SharedArrayBuffer;
  /** Asymmetric int4: the packed uint4 zero points (quant-int4.ts); absent when symmetric. */
  readonly zeros?: SharedArrayBuffer;
  readonly chunks: readonly RowChunk[];
  /** Int32 [next chunk, chunks done, failed flag]. */
  readonly ctl: SharedArrayBuffer;
}

const CTL_NEXT = 0;
const CTL_DONE = 1;
const CTL_FAILED = 2;
/** A chunk stuck this long means a worker died holding it. */
const STALL_MS = 120_000;

/**
 * Starts `entry` in a worker thread. hearth runs its .ts sources through tsx and, on Node 20, a
 * worker does not inherit the loader, so a .ts entry is booted by registering tsx first (the same
 * trick as runtime/spawn-thread.ts, which model/ cannot import).
 */
function startWorker(entry: URL): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true });
}

export class QuantPool {
  private readonly workers: Worker[];

  private constructor(workers: number) {
    this.workers = Array.from({ length: workers }, () => {
      const w = startWorker(new URL('./quant-worker.ts', import.meta.url));
      w.unref();
      w.on('error', () => {
        // A dead worker only stops taking chunks; the stall check in run() reports a lost one.
      });
      return w;
    });
  }

  /** A pool with `threads` participants in all: the calling thread plus threads − 1 workers. */
  static start(threads: number): QuantPool {
    return new QuantPool(Math.max(0, Math.min(threads, os.availableParallelism()) - 1));
  }

  get size(): number {
    return this.workers.length + 1;
  }

  /**
   * Quantizes every chunk into dst (whose packed/scales must live in SharedArrayBuffers). `self`
   * does one chunk on the calling thread. Returns when all chunks are done.
   */
  run(chunks: readonly RowChunk[], dst: Int4Matrix, self: (c: RowChunk) => void): void {
    const packed = dst.packed.buffer;
    const scales = dst.scales.buffer;
    const zeros = dst.zeros?.buffer;
    const zerosShared = zeros === undefined || (zeros instanceof SharedArrayBuffer && dst.zeros?.byteOffset === 0);
    if (this.workers.length === 0 || !zerosShared || !(packed instanceof SharedArrayBuffer) || !(scales instanceof SharedArrayBuffer) || dst.packed.byteOffset !== 0 || dst.scales.byteOffset !== 0) {
      for (const c of chunks) self(c);
      return;
    }
    const ctl = new SharedArrayBuffer(12);
    const state = new Int32Array(ctl);
    const job: PoolJob = { cols: dst.cols, blocks: dst.blocks, block: dst.block ?? 32, packed, scales, ...(zeros instanceof SharedArrayBuffer ? { zeros } : {}), chunks, ctl };
    for (const w of this.workers) w.postMessage(job);
    for (;;) {
      const i = Atomics.add(state, CTL_NEXT, 1);
      if (i >= chunks.length) break;
      self(chunks[i] as RowChunk);
      Atomics.add(state, CTL_DONE, 1);
    }
    let seen = Atomics.load(state, CTL_DONE);
    let since = Date.now();
    while (seen < chunks.length) {
      if (Atomics.load(state, CTL_FAILED) !== 0) throw new Error('int4 quantization failed in a worker thread');
      Atomics.wait(state, CTL_DONE, seen, 1000);
      const now = Atomics.load(state, CTL_DONE);
      if (now !== seen) {
        seen = now;
        since = Date.now();
      } else if (Date.now() - since > STALL_MS) {
        throw new Error('int4 quantization stalled: a worker thread stopped');
      }
    }
    if (Atomics.load(state, CTL_FAILED) !== 0) throw new Error('int4 quantization failed in a worker thread');
  }

  close(): void {
    for (const w of this.workers) void w.terminate();
  }
}

let active: QuantPool | null = null;

/** The pool the graph builder's weight reader uses, if any (see withQuantPool). */
export function activeQuantPool(): QuantPool | null {
  return active;
}

/** Runs `fn` (a synchronous graph build) with `pool` available to the weight reader. */
export function withQuantPool<T>(pool: QuantPool, fn: () => T): T {
  const prev = active;
  active = pool;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

export { CTL_DONE, CTL_FAILED, CTL_NEXT };
