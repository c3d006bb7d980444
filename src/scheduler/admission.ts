// Slots for sequences: at most `maxConcurrent` decode at once, and one request (a group: the n
// choices of one API request) holds at most `maxPerRequest` of them. Freed slots go to the waiting
// request that holds the fewest (ties: the one waiting longest), so a 1-token request is not
// stuck behind a request with n=16 (issue 8, defect 4): max-min fair shares, the rule a
// round-robin across requests converges to.
//
// A waiter whose client aborts leaves the queue at once and never receives a slot: handing a
// slot to an aborted waiter leaked it for good (issue 8, defect 2).

import { HearthError } from '../errors/index.ts';

export interface AdmissionOptions {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  /** Slots one request (group) may hold at once; ≥ maxConcurrent = no per-request cap. */
  readonly maxPerRequest: number;
}

interface Waiter {
  readonly group: Group;
  /** Arrival order: the tie-break between groups holding as many slots. */
  readonly order: number;
  readonly grant: () => void;
  cancelled: boolean;
}

interface Group {
  readonly key: string;
  running: number;
  /** FIFO of this group's waiters; `head` moves instead of Array#shift. Cancelled ones are skipped. */
  queue: Waiter[];
  head: number;
  /** Live (not cancelled) waiters in `queue`. */
  waiting: number;
}

/** A held slot; release it exactly once (later calls do nothing). */
export interface Slot {
  release(): void;
}

export class Admission {
  private readonly opts: AdmissionOptions;
  private readonly groups = new Map<string, Group>();
  /** Groups with live waiters, so release() scans only those (at most maxQueue of them). */
  private readonly waitingGroups = new Set<Group>();
  private running = 0;
  private waiting = 0;
  private order = 0;

  constructor(opts: AdmissionOptions) {
    this.opts = { ...opts, maxPerRequest: Math.max(1, Math.min(opts.maxPerRequest, opts.maxConcurrent)) };
  }

  load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting };
  }

  /**
   * Resolves with a slot for one sequence of `group`; rejects with HEARTH_ERR_QUEUE_FULL when the
   * queue is full, or with the signal's reason when it aborts first (then nothing is held).
   */
  async acquire(group: string, signal?: AbortSignal): Promise<Slot> {
    if (signal?.aborted === true) throw abortReason(signal);
    const g = this.group(group);
    if (this.running < this.opts.maxConcurrent && g.running < this.opts.maxPerRequest) {
      // Anyone still waiting is held back by its own group's cap, so taking a free slot jumps no one.
      return this.take(g);
    }
    if (this.waiting >= this.opts.maxQueue) {
      this.dropIfIdle(g);
      throw new HearthError('HEARTH_ERR_QUEUE_FULL', [this.running + this.waiting, 1]);
    }
    return new Promise<Slot>((resolve, reject) => {
      const onAbort = (): void => {
        if (w.cancelled) return;
        w.cancelled = true;
        this.unqueue(g);
        reject(abortReason(signal!));
      };
      const w: Waiter = {
        group: g,
        order: this.order++,
        cancelled: false,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.take(g));
        },
      };
      g.queue.push(w);
      g.waiting++;
      this.waiting++;
      this.waitingGroups.add(g);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private take(g: Group): Slot {
    g.running++;
    this.running++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        g.running--;
        this.running--;
        this.dropIfIdle(g);
        this.pump();
      },
    };
  }

  /** Grants free slots to waiters, fewest-held group first, while any group can take one. */
  private pump(): void {
    while (this.running < this.opts.maxConcurrent && this.waiting > 0) {
      let best: Group | null = null;
      let bestOrder = 0;
      for (const g of this.waitingGroups) {
        if (g.running >= this.opts.maxPerRequest) continue;
        const head = this.liveHead(g);
        if (head === undefined) continue;
        if (best === null || g.running < best.running || (g.running === best.running && head.order < bestOrder)) {
          best = g;
          bestOrder = head.order;
        }
      }
      if (best === null) return; // every waiter's request is at its cap
      const w = this.liveHead(best)!;
      best.head++;
      this.unqueue(best);
      w.grant();
    }
  }

  /** The first waiter of g that has not aborted (aborted ones at the head are dropped). */
  private liveHead(g: Group): Waiter | undefined {
    while (g.head < g.queue.length && g.queue[g.head]!.cancelled) g.head++;
    return g.queue[g.head];
  }

  /** Bookkeeping after one of g's waiters left the queue (granted or aborted). */
  private unqueue(g: Group): void {
    g.waiting--;
    this.waiting--;
    if (g.waiting === 0) {
      g.queue = [];
      g.head = 0;
      this.waitingGroups.delete(g);
    } else if (g.head > 64 && g.head * 2 > g.queue.length) {
      g.queue = g.queue.slice(g.head);
      g.head = 0;
    }
    this.dropIfIdle(g);
  }

  private group(key: string): Group {
    let g = this.groups.get(key);
    if (g === undefined) {
      g = { key, running: 0, queue: [], head: 0, waiting: 0 };
      this.groups.set(key, g);
    }
    return g;
  }

  private dropIfIdle(g: Group): void {
    if (g.running === 0 && g.waiting === 0) this.groups.delete(g.key);
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

/**
 * Refuses a prompt with a token id the model has no embedding row for. The tokenizer may know more
 * ids than the model's vocab_size (a checkpoint paired with a larger tokenizer, a token-array
 * prompt): such an id would reach the first stage's embedding lookup and fail there as a 500 with
 * onnxruntime's raw text (issue 20). Every API hands its prompt to Scheduler.generate, which calls
 * this before taking a slot, so one check covers chat, completions, responses and messages.
 */
export function checkPromptIds(prompt: Int32Array, vocabSize: number | null, tokenizerVocab?: number): void {
  if (vocabSize === null) return;
  for (let i = 0; i < prompt.length; i++) {
    const id = prompt[i] as number;
    if (id >= 0 && id < vocabSize) continue;
    const why = tokenizerVocab !== undefined && tokenizerVocab > vocabSize && id < tokenizerVocab
      ? `: the tokenizer has ${tokenizerVocab} ids and the model only ${vocabSize}, so text that tokenizes to the higher ids cannot be served by this model`
      : '';
    throw new HearthError('HEARTH_ERR_TOKEN_OUT_OF_VOCAB', [id, i, vocabSize - 1, why]);
  }
}

/** logit_bias keys past the model's vocab would bias logits that do not exist: refused the same way. */
export function checkBiasIds(bias: Readonly<Record<number, number>> | null, vocabSize: number | null): void {
  if (bias === null || vocabSize === null) return;
  for (const k of Object.keys(bias)) {
    const id = Number(k);
    if (id >= vocabSize) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid key in 'logit_bias': token id ${id} is outside this model's vocabulary (ids 0..${vocabSize - 1}).`], { param: 'logit_bias' });
  }
}
