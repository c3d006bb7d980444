import type { StageItem, ShardEngine } from '../runtime/types.ts';
import type { SampledToken, SamplingParams } from '../sampling/types.ts';
import { sampleToken } from '../sampling/index.ts';

/** One step of one sequence on this stage. */
export interface StageWork {
  readonly item: StageItem;
  readonly promptLen: number;
  readonly sampling: SamplingParams;
  /** Last stage: sample a token after the item's final position. */
  readonly wantToken: boolean;
  /** Last stage: also return the full logits (constrained decoding samples at the gateway). */
  readonly wantLogits: boolean;
}

export interface StageWorkResult {
  /** Non-last stage: hidden states to pass on. */
  readonly hidden?: Float32Array;
  /** Last stage: the sampled token (null when not asked for). */
  readonly token?: SampledToken | null;
  readonly logits?: Float32Array;
}

interface Pending {
  readonly work: StageWork;
  readonly resolve: (r: StageWorkResult) => void;
  readonly reject: (e: unknown) => void;
}

/** Token history of one sequence, for repetition/presence/frequency penalties on the last stage. */
class History {
  buf = new Int32Array(64);
  len = 0;
  /** Writes tokens at pos, dropping anything after (a replay or fork rewrites the tail). */
  write(pos: number, tokens: Int32Array): void {
    const need = pos + tokens.length;
    if (need > this.buf.length) {
      const next = new Int32Array(Math.max(need, this.buf.length * 2));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(tokens, pos);
    this.len = need;
  }
  view(): Int32Array {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Runs a stage's work queue over one ShardEngine: whatever is waiting when the engine becomes free
 * goes into one engine.run (decode steps of many sequences batch together; the engine runs prefill
 * chunks one by one). The last stage samples here, so only a token (a few bytes) leaves the worker.
 */
export class StageRunner {
  readonly engine: ShardEngine;
  private readonly maxBatch: number;
  // A plain array with a moving head: no Array#shift on the hot path.
  private queue: Pending[] = [];
  private head = 0;
  private busy = false;
  private closed = false;
  private readonly histories = new Map<string, History>();
  /** Steps run and positions processed, for metrics and `hearth bench`. */
  readonly stats = { runs: 0, items: 0, positions: 0, busyMs: 0 };

  constructor(engine: ShardEngine, opts: { maxBatch?: number } = {}) {
    this.engine = engine;
    this.maxBatch = opts.maxBatch ?? 32;
  }

  submit(work: StageWork): Promise<StageWorkResult> {
    if (this.closed) return Promise.reject(new Error('stage runner closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ work, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  free(seq: string): void {
    this.histories.delete(seq);
    this.engine.free(seq);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (let i = this.head; i < this.queue.length; i++) this.queue[i]?.reject(new Error('stage runner closed'));
    this.queue = [];
    this.head = 0;
    this.histories.clear();
  }

  private takeBatch(): Pending[] {
    // Decode steps (n = 1) of distinct sequences batch together; at most one prefill chunk rides
    // along so a long prompt cannot starve the streams that are already decoding.
    const batch: Pending[] = [];
    const seqs = new Set<string>();
    let prefill = false;
    const rest: Pending[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const p = this.queue[i]!;
      const isPrefill = p.work.item.n > 1;
      if (batch.length < this.maxBatch && !seqs.has(p.work.item.seq) && (!isPrefill || !prefill)) {
        batch.push(p);
        seqs.add(p.work.item.seq);
        if (isPrefill) prefill = true;
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    this.head = 0;
    return batch;
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.head < this.queue.length && !this.closed) {
        const batch = this.takeBatch();
        const t0 = performance.now();
        let results;
        try {
          results = await this.engine.run(batch.map((p) => p.work.item));
        } catch (e) {
          for (const p of batch) p.reject(e);
          continue;
        }
        this.stats.runs++;
        this.stats.items += batch.length;
        this.stats.busyMs += performance.now() - t0;
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!;
          const r = results[i];
          this.stats.positions += p.work.item.n;
          try {
            if (r === undefined) throw new Error(`engine returned ${results.length} results for ${batch.length} items`);
            p.resolve(this.finish(p.work, r.hidden, r.logits));
          } catch (e) {
            p.reject(e);
          }
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private finish(work: StageWork, hidden: Float32Array | undefined, logits: Float32Array | undefined): StageWorkResult {
    if (!this.engine.last) {
      if (hidden === undefined) throw new Error('non-last stage produced no hidden states');
      return { hidden };
    }
    const { item } = work;
    let h = this.histories.get(item.seq);
    if (h === undefined) {
      h = new History();
      if (item.fork !== undefined) {
        const src = this.histories.get(item.fork.from);
        if (src !== undefined) h.write(0, src.view().slice(0, item.fork.len));
      }
      this.histories.set(item.seq, h);
    }
    h.write(item.pos, item.tokens);
    if (logits === undefined) throw new Error('last stage produced no logits');
    const token = work.wantToken
      ? sampleToken(logits, work.sampling, { history: h.view(), promptLen: work.promptLen, pos: item.pos + item.n })
      : null;
    return work.wantLogits ? { token, logits } : { token };
  }
}
