import type { StageItem, ShardEngine } from '../runtime/types.ts';
import type { SampledToken, SamplingParams } from '../sampling/types.ts';
import { sampleToken } from '../sampling/index.ts';
import { HearthError } from '../errors/index.ts';
import { kvFullSequences } from '../runtime/engine.ts';

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
  /** Non-last stage: hidden states to pass on; last stage, item.wantHidden: the final-normed states. */
  readonly hidden?: Float32Array;
  /** Last stage: the sampled token (null when not asked for). */
  readonly token?: SampledToken | null;
  /** Last stage, choices > 1: the choice after each of the last `choices` positions. */
  readonly tokens?: readonly SampledToken[];
  readonly logits?: Float32Array;
}

interface Pending {
  readonly work: StageWork;
  readonly resolve: (r: StageWorkResult) => void;
  readonly reject: (e: unknown) => void;
  /** A chunk run in parts (see chunkBudget): positions done so far and their hidden states. */
  done?: number;
  parts?: Float32Array[];
}

/**
 * Prompt positions a step runs beside decode steps (default). A 0.5B int4 stage on 2 cores takes
 * ~2.3 ms per prompt position and ~17-90 ms per decode batch of 1-16, so a 128-token chunk riding
 * along stalls every stream by ~300 ms; 32 positions keep that stall near one batched step.
 */
export const CHUNK_BUDGET = 32;
/** Longest wait for the rest of the previous batch before stepping (see gather()). */
export const GATHER_MS = 3;

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
  readonly stats = { runs: 0, items: 0, positions: 0, busyMs: 0, chunkParts: 0, maxItems: 0 };

  private readonly chunkBudget: number;
  /** Decode sequences of the last step that have not sent their next step yet. */
  private readonly expected = new Set<string>();
  private lastBatch = 0;
  private lastStepMs = 0;
  private wake: (() => void) | null = null;
  /** Stages in the plan, and the run in which each decoding sequence last stepped here. */
  private stages = 1;
  private readonly lastRun = new Map<string, number>();
  /** The run in which each sequence last had a prefill chunk run here (round robin, nextPrefill). */
  private readonly prefillTurn = new Map<string, number>();

  constructor(engine: ShardEngine, opts: { maxBatch?: number; chunkBudget?: number } = {}) {
    this.engine = engine;
    this.maxBatch = opts.maxBatch ?? 32;
    this.chunkBudget = Math.max(1, opts.chunkBudget ?? CHUNK_BUDGET);
  }

  /** The plan's stage count (see decodeCap). */
  setStages(n: number): void {
    this.stages = Math.max(1, Math.floor(n) || 1);
  }

  /**
   * Most decode steps per run: ceil(decoding sequences / stages). With S stages a pipeline holds S
   * micro-batches, one on each stage; a stage that stepped all of them at once would leave the
   * others idle while the batch crossed it. Measured on 2 workers × 1 thread (0.5B int4): 8
   * streams as one batch of 8 reached 113-121 tok/s, as two micro-batches of 4 about 156. The
   * sequences counted are those that stepped here in the last 2·S+1 runs (a micro-batch comes by
   * once every S runs).
   */
  private decodeCap(): number {
    if (this.stages <= 1) return this.maxBatch;
    const since = this.stats.runs - 2 * this.stages - 1;
    let active = 0;
    for (const [seq, run] of this.lastRun) {
      if (run >= since) active++;
      else this.lastRun.delete(seq);
    }
    // Queued decode steps of sequences not seen lately count too (a batch arriving at once).
    for (let i = this.head; i < this.queue.length; i++) {
      const it = this.queue[i]!.work.item;
      if (it.n === 1 && !this.lastRun.has(it.seq)) active++;
    }
    return Math.max(1, Math.min(this.maxBatch, Math.ceil(active / this.stages)));
  }

  submit(work: StageWork): Promise<StageWorkResult> {
    if (this.closed) return Promise.reject(new Error('stage runner closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ work, resolve, reject });
      this.arrived(work.item.seq);
      if (!this.busy) void this.drain();
    });
  }

  /**
   * Ends seq here: its KV goes, and so do its steps still queued. A queued step of a freed sequence
   * would otherwise reach the engine in a batch with others, fail its position check (no KV), and
   * fail the whole batch: one client going away mid-stream cost every stream batched beside it.
   */
  free(seq: string): void {
    this.histories.delete(seq);
    this.lastRun.delete(seq);
    this.prefillTurn.delete(seq);
    this.arrived(seq);
    let dropped: Pending[] | null = null;
    for (let i = this.head; i < this.queue.length; i++) {
      if (this.queue[i]!.work.item.seq === seq) (dropped ??= []).push(this.queue[i]!);
    }
    if (dropped !== null) {
      this.queue = this.queue.slice(this.head).filter((p) => p.work.item.seq !== seq);
      this.head = 0;
      for (const p of dropped) p.reject(new HearthError('HEARTH_ERR_ENGINE', [`sequence ${seq} was freed before its step ran`]));
    }
    this.engine.free(seq);
  }

  private arrived(seq: string): void {
    if (this.expected.delete(seq) && this.expected.size === 0) this.wake?.();
  }

  /**
   * Before a step, lets the rest of the previous batch come back, so that batches keep their
   * members (the engine's KV groups then copy nothing) instead of splitting into a step of the
   * first arrival and one of the others. A yield to the event loop covers a pipeline in this
   * process (the next steps are submitted from promise callbacks); over a bus, arrivals spread over
   * a millisecond or two, so while fewer than half of the previous batch are here and some of it is
   * still out, it waits up to GATHER_MS (at most a fifth of the last step's time). With two
   * micro-batches taking turns (a 2-stage pipeline), the other one is already queued: no wait.
   */
  private async gather(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    const waiting = this.queue.length - this.head;
    if (this.expected.size === 0 || waiting * 2 >= this.lastBatch) return;
    const ms = Math.min(GATHER_MS, this.lastStepMs / 5);
    if (ms < 0.2) return;
    await new Promise<void>((r) => {
      const timer = setTimeout(() => {
        this.wake = null;
        r();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        r();
      };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (let i = this.head; i < this.queue.length; i++) this.queue[i]?.reject(new Error('stage runner closed'));
    this.queue = [];
    this.head = 0;
    this.histories.clear();
  }

  /**
   * Queue index of the prefill chunk to run next: among the first queued chunk of each sequence
   * (a sequence's steps run in order), the one whose sequence had a chunk run least recently.
   * Prompts sent together take turns chunk by chunk (issue 22 item 2): with pipelined prefill a
   * whole prompt's chunks arrive at once, and first come, first served made the fourth of four
   * prompts wait for three whole prefills. -1: no prefill queued.
   */
  private nextPrefill(): number {
    let best = -1;
    let bestTurn = Number.POSITIVE_INFINITY;
    const seen = new Set<string>();
    for (let i = this.head; i < this.queue.length; i++) {
      const it = this.queue[i]!.work.item;
      if (seen.has(it.seq)) continue;
      seen.add(it.seq);
      if (it.n <= 1) continue;
      const turn = this.prefillTurn.get(it.seq) ?? -1;
      if (turn < bestTurn) { best = i; bestTurn = turn; }
    }
    return best;
  }

  private takeBatch(): Pending[] {
    // Decode steps (n = 1) of distinct sequences batch together; at most one prefill chunk rides
    // along so a long prompt cannot starve the streams that are already decoding.
    const batch: Pending[] = [];
    const seqs = new Set<string>();
    let decodes = 0;
    const cap = this.decodeCap();
    const rest: Pending[] = [];
    const pick = this.nextPrefill();
    for (let i = this.head; i < this.queue.length; i++) {
      const p = this.queue[i]!;
      const isPrefill = p.work.item.n > 1;
      if (batch.length < this.maxBatch && !seqs.has(p.work.item.seq) && (isPrefill ? i === pick : decodes < cap)) {
        batch.push(p);
        seqs.add(p.work.item.seq);
        if (isPrefill) {
          this.prefillTurn.set(p.work.item.seq, this.stats.runs);
          if (this.prefillTurn.size > 4096) this.prefillTurn.delete(this.prefillTurn.keys().next().value as string);
        } else {
          this.lastRun.set(p.work.item.seq, this.stats.runs);
          decodes++;
        }
      } else {
        rest.push(p);
        // A sequence's steps run in order: a later step of it (its n = 1 step after a prefill
        // chunk not picked this run) must not overtake the one left waiting. Without this, a
        // replay's last step ran before its chunks ("step at position 47 but this stage holds 0").
        seqs.add(p.work.item.seq);
      }
    }
    this.queue = rest;
    this.head = 0;
    return batch;
  }

  /**
   * The item to run for p this step: whole, or (a chunk beside decode steps) its next
   * chunkBudget positions, the rest left for later steps. The last part keeps at least the
   * positions whose logits the item asks for.
   */
  private part(p: Pending, withDecodes: boolean): StageItem {
    const it = p.work.item;
    const done = p.done ?? 0;
    const left = it.n - done;
    const keep = it.logitRows ?? 1;
    const n = withDecodes && left - this.chunkBudget >= keep ? this.chunkBudget : left;
    if (done === 0 && n === it.n) return it;
    const h = this.engine.config.hiddenSize;
    const { fork, rewind, logitRows, hidden, ...base } = it;
    return {
      ...base,
      pos: it.pos + done,
      n,
      tokens: it.tokens.subarray(done, done + n),
      ...(hidden === undefined ? {} : { hidden: hidden.subarray(done * h, (done + n) * h) }),
      ...(done === 0 && fork !== undefined ? { fork } : {}),
      ...(done === 0 && rewind !== undefined ? { rewind } : {}),
      ...(n === left && logitRows !== undefined ? { logitRows } : {}),
    };
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.head < this.queue.length && !this.closed) {
        await this.gather();
        if (this.closed || this.head >= this.queue.length) break;
        const batch = this.takeBatch();
        const withDecodes = batch.some((p) => p.work.item.n === 1);
        const items = batch.map((p) => this.part(p, withDecodes));
        const t0 = performance.now();
        let results;
        try {
          results = await this.engine.run(items);
        } catch (e) {
          // A batch refused because some sequences' KV would pass the node's budget
          // (HEARTH_ERR_KV_FULL): those fail, the others go back to the head of the queue.
          const full = kvFullSequences(e);
          const rest = full === null ? [] : batch.filter((p) => !full.has(p.work.item.seq));
          for (const p of batch) if (!rest.includes(p)) p.reject(e);
          if (rest.length > 0) this.queue.splice(this.head, 0, ...rest);
          continue;
        }
        const ms = performance.now() - t0;
        this.stats.runs++;
        this.stats.items += batch.length;
        this.stats.maxItems = Math.max(this.stats.maxItems, batch.length);
        this.stats.busyMs += ms;
        this.lastStepMs = ms;
        this.lastBatch = 0;
        this.expected.clear();
        const unfinished: Pending[] = [];
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!;
          const it = items[i]!;
          const r = results[i];
          this.stats.positions += it.n;
          try {
            if (r === undefined) throw new Error(`engine returned ${results.length} results for ${batch.length} items`);
            if (it.n === 1) {
              this.expected.add(it.seq);
              this.lastBatch++;
            }
            p.done = (p.done ?? 0) + it.n;
            if (it.n < p.work.item.n) this.stats.chunkParts++;
            if (p.done < p.work.item.n) {
              if (!this.engine.last || p.work.item.wantHidden === true) (p.parts ??= []).push(r.hidden ?? new Float32Array(0));
              unfinished.push(p);
              continue;
            }
            p.resolve(this.finish(p.work, this.joined(p, r.hidden), r.logits));
          } catch (e) {
            p.reject(e);
          }
        }
        // A chunk run in parts goes on first, before anything queued since.
        if (unfinished.length > 0) this.queue.splice(this.head, 0, ...unfinished);
      }
    } finally {
      this.busy = false;
    }
  }

  /** A chunk run in parts: its hidden states, in order. */
  private joined(p: Pending, last: Float32Array | undefined): Float32Array | undefined {
    if (p.parts === undefined || last === undefined) return last;
    const all = new Float32Array(p.work.item.n * this.engine.config.hiddenSize);
    let o = 0;
    for (const a of [...p.parts, last]) {
      all.set(a, o);
      o += a.length;
    }
    return all;
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
    // An embedding step (issue 21): the final-normed states of every position, no token.
    if (item.wantHidden === true) {
      if (hidden === undefined) throw new Error('last stage produced no hidden states for an embedding step');
      return { token: null, hidden };
    }
    // item.logitRows > 1: a speculative verify step (the engine returned [rows, vocabSize]).
    const rows = item.logitRows ?? 1;
    if (rows > 1) {
      // Speculative verify: row r holds the logits after position end−rows+r. Each choice is drawn
      // exactly as a one-token decode step at that position would draw it: the (seed, position)
      // RNG, and penalties over the history up to and including that position (drafts included;
      // a draft the scheduler rejects is never followed by a choice it keeps).
      const v = logits.length / rows;
      const end = item.pos + item.n;
      const all = h.view();
      const tokens: SampledToken[] = [];
      if (work.wantToken) {
        for (let r = 0; r < rows; r++) {
          const at = end - rows + r + 1;
          tokens.push(sampleToken(logits.subarray(r * v, (r + 1) * v), work.sampling, { history: all.subarray(0, at), promptLen: work.promptLen, pos: at }));
        }
      }
      const token = tokens[rows - 1] ?? null;
      return work.wantLogits ? { token, tokens, logits } : { token, tokens };
    }
    const token = work.wantToken
      ? sampleToken(logits, work.sampling, { history: h.view(), promptLen: work.promptLen, pos: item.pos + item.n })
      : null;
    return work.wantLogits ? { token, logits } : { token };
  }
}
