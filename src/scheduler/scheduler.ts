import { HearthError, isHearthError } from '../errors/index.ts';
import { GREEDY } from '../sampling/types.ts';
import type { SampledToken } from '../sampling/types.ts';
import { Admission, checkBiasIds, checkPromptIds } from './admission.ts';
import { PrefixCache } from './prefix-cache.ts';
import { PassCost, Speculator, emptySpeculationStats, type Draft, type SpeculateOptions, type SpeculationStats } from './speculate.ts';
import type { EmbedRequest, GenerateEvent, GenerateRequest, Generator, Pipeline, StepOutcome } from './types.ts';
import { WarmMoves, chunkEnd, type Mover } from './warm-move.ts';

export interface SchedulerOptions {
  /** Sequences decoding at once; more wait in the queue. */
  readonly maxConcurrent: number;
  /** Sequences allowed to wait; beyond that a request gets 429 (HEARTH_ERR_QUEUE_FULL). */
  readonly maxQueue: number;
  /** Slots the sequences of one request (its n choices) may hold at once; null = half of
   *  maxConcurrent (at least 1), so one big request leaves room for others. */
  readonly maxPerRequest: number | null;
  /** Prompt tokens per prefill step (bounds one step's activations and its latency for others). */
  readonly prefillChunk: number;
  /** Model context length: generation stops with 'length' there. */
  readonly contextLength: number;
  /** The model's vocab_size: a prompt id at or past it is refused (HEARTH_ERR_TOKEN_OUT_OF_VOCAB);
   *  null = unchecked. */
  readonly vocabSize?: number | null;
  /** The tokenizer's id count, only to say why in that error. */
  readonly tokenizerVocab?: number;
  /** How long a request waits for a live plan (a re-plan after a node loss) before 503. */
  readonly readyTimeoutMs: number;
  /** Replays of one sequence after plan changes before giving up. */
  readonly maxReplays: number;
  /** Finished sequences kept for prefix reuse (0 = off). */
  readonly prefixCache: number;
  /** Shortest shared prefix worth forking. */
  readonly minPrefix: number;
  /** Speculative decoding (speculate.ts): drafts verified k at a time; null = off. */
  readonly speculate: SpeculateOptions | null;
  readonly onReplay?: (seq: string, epoch: number, tokens: number) => void;
  /** A stream moved to a plan it had warmed (warm-move.ts): it goes on from `from` of `tokens`. */
  readonly onMove?: (seq: string, epoch: number, from: number, tokens: number) => void;
}

/** Prefill chunks of one sequence in flight at once (issue 22 item 2): enough that every stage of
 *  a pipeline has a chunk of the prompt to run (stage 0 runs chunk k+1 while stage 1 runs chunk
 *  k), few enough that one prompt's activations do not pile up in a stage's queue. */
export const PREFILL_WINDOW = 4;
/** Chained decode burst with speculation on and no draft found: first length and cap. */
const MIN_BURST = 4;
const MAX_BURST = 64;

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = Object.freeze({
  maxConcurrent: 16,
  maxQueue: 64,
  maxPerRequest: null,
  prefillChunk: 256,
  contextLength: 4096,
  readyTimeoutMs: 30_000,
  maxReplays: 8,
  prefixCache: 8,
  minPrefix: 16,
  speculate: null,
});

/**
 * Drives sequences through a Pipeline: chunked prefill, then one decode step at a time. Each
 * sequence has at most one step in flight; many sequences run at once, so every stage has work
 * (pipeline parallelism) and a stage can batch the decode steps waiting for it.
 *
 * Fault tolerance lives here: when a stage is lost the Pipeline rejects with PLAN_CHANGED, and the
 * sequence is replayed on the new plan — prompt plus every token generated so far, prefilled again.
 * Sampling draws from an RNG seeded by (seed, position), so the replayed sequence continues exactly
 * where it stopped: no token lost, none repeated.
 */
export class Scheduler implements Generator {
  private readonly pipeline: Pipeline;
  private readonly opts: SchedulerOptions;
  private readonly prefix: PrefixCache;
  private readonly admission: Admission;
  private nextSeq = 0;
  private readonly spec: SpeculationStats = emptySpeculationStats();
  /** What a decode pass and a verify position cost on this pipeline (all sequences share it). */
  private readonly passCost = new PassCost();
  /** Make before break: streams warm the next plan before the switch (warm-move.ts). */
  readonly moves: WarmMoves;

  constructor(pipeline: Pipeline, opts: Partial<SchedulerOptions> = {}) {
    this.pipeline = pipeline;
    this.opts = { ...DEFAULT_SCHEDULER_OPTIONS, ...opts };
    this.prefix = new PrefixCache({
      capacity: this.opts.prefixCache,
      minPrefix: this.opts.minPrefix,
      evict: (seq) => pipeline.free(seq),
    });
    this.admission = new Admission({
      maxConcurrent: this.opts.maxConcurrent,
      maxQueue: this.opts.maxQueue,
      maxPerRequest: perRequestSlots(this.opts.maxConcurrent, this.opts.maxPerRequest),
    });
    this.moves = new WarmMoves(pipeline, this.opts.prefillChunk, PREFILL_WINDOW, (id) => `${id}.${(this.nextSeq++).toString(36)}.w`);
    pipeline.onWarm?.((epoch) => this.moves.warm(epoch));
  }

  load(): { running: number; waiting: number } {
    return this.admission.load();
  }

  /** Decode passes, tokens they emitted, drafts sent and accepted, since start (a copy). */
  speculation(): SpeculationStats {
    return { ...this.spec };
  }

  /** Number of finished sequences held for prefix reuse. */
  retained(): number {
    return this.prefix.size;
  }

  async *generate(req: GenerateRequest): AsyncGenerator<GenerateEvent> {
    checkPromptIds(req.prompt, this.opts.vocabSize ?? null, this.opts.tokenizerVocab);
    checkBiasIds(req.sampling.logitBias, this.opts.vocabSize ?? null);
    const slot = await this.admission.acquire(req.group ?? req.id, req.signal);
    try {
      yield* this.run(req);
    } finally {
      slot.release();
    }
  }

  /**
   * Embeddings (issue 21): the final-normed hidden state of every position of req.tokens, fed in
   * the same prefill chunks as a prompt, sampling nothing. Takes a slot like a generation; a plan
   * change replays it from the start (nothing to keep: the states are recomputed whole).
   */
  async hiddenStates(req: EmbedRequest): Promise<Float32Array> {
    checkPromptIds(req.tokens, this.opts.vocabSize ?? null, this.opts.tokenizerVocab);
    if (req.tokens.length === 0 || req.tokens.length > this.opts.contextLength) throw new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [this.opts.contextLength, req.tokens.length, '']);
    const slot = await this.admission.acquire(req.group ?? req.id, req.signal);
    try {
      for (let attempt = 0; ; attempt++) {
        const seq = this.newSeqId(req.id, attempt);
        const parts: Float32Array[] = [];
        try {
          await this.pipeline.waitReady(this.opts.readyTimeoutMs);
          for (let pos = 0; pos < req.tokens.length; pos += this.opts.prefillChunk) {
            if (isAborted(req.signal)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['the client went away']);
            const tokens = req.tokens.slice(pos, pos + this.opts.prefillChunk);
            const out = await this.pipeline.step({ seq, pos, tokens, promptLen: req.tokens.length, sampling: GREEDY, wantToken: false, wantLogits: false, wantHidden: true });
            if (out.hidden === undefined) throw new HearthError('HEARTH_ERR_ENGINE', ['the last stage returned no hidden states (a worker older than embeddings?)']);
            parts.push(out.hidden);
          }
        } catch (e) {
          if (!isHearthError(e, 'HEARTH_ERR_PLAN_CHANGED') || attempt >= this.opts.maxReplays) throw e;
          continue;
        } finally {
          this.pipeline.free(seq);
        }
        const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          all.set(p, o);
          o += p.length;
        }
        return all;
      }
    } finally {
      slot.release();
    }
  }

  /** Frees every retained sequence (call before closing the pipeline). */
  clear(): void {
    this.prefix.clear();
  }

  private async *run(req: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const { prompt, sampling, constraint, signal } = req;
    const promptLen = prompt.length;
    const maxTokens = Math.max(0, Math.min(req.maxTokens, this.opts.contextLength - promptLen));
    const stop = new Set(req.stopTokens);
    // All tokens of the sequence so far: prompt, then generated ones (grown by doubling).
    let tokens = new Int32Array(Math.max(16, promptLen + Math.min(maxTokens, 4096)));
    tokens.set(prompt);
    let total = promptLen;
    let generated = 0;
    let attempt = 0;
    let seq = this.newSeqId(req.id, attempt);
    // fed: positions of `tokens` whose KV the stages hold. kv: positions they hold in all, which
    // after a verify step includes rejected drafts (cut back by the next step's `rewind`).
    let fed = 0;
    let kv = 0;
    const speculator = this.opts.speculate === null ? null : new Speculator(this.opts.speculate, this.passCost);
    // With speculation on, decode steps run stepwise while drafts are found; where none is found,
    // a chained burst (two hops per token) of this many tokens runs, growing while none turns up.
    let burst = MIN_BURST;
    let epoch = this.pipeline.epoch();
    let fork = this.prefix.lookup(prompt, epoch);
    let finished: 'stop' | 'length' | 'cancelled' | null = maxTokens === 0 ? 'length' : null;

    // Two hops per token (issue 10): without a grammar or stop strings to check between tokens,
    // the pipeline loops decode steps on the workers and streams the tokens here.
    const chained = constraint === undefined && req.stepwise !== true && this.pipeline.decode !== undefined;
    const stopIds = [...stop];
    const mover: Mover = {
      id: req.id, sampling, done: false, warming: false, warm: null,
      snapshot: () => (total - 1 > promptLen ? { tokens: tokens.slice(0, total), len: total - 1, promptLen } : null),
    };
    this.moves.track(mover);
    try {
      while (finished === null) {
        if (isAborted(signal)) {
          finished = 'cancelled';
          break;
        }
        // Decoding (all but the last token fed): maybe send drafts along to be verified.
        let draft: Draft | null = null;
        if (speculator !== null && fed > 0 && fed === total - 1) {
          const room = Math.min(maxTokens - generated, this.opts.contextLength - total) - 1;
          draft = speculator.draft(tokens, total, room, constraint);
          burst = draft === null ? burst : MIN_BURST;
        }
        const left = maxTokens - generated;
        const n = !chained ? 1 : speculator === null ? left : Math.min(left, burst);
        try {
          await this.pipeline.waitReady(this.opts.readyTimeoutMs);
          if (this.pipeline.epoch() !== epoch) {
            epoch = this.pipeline.epoch();
            if (fork !== null) fork = null;
          }
          const steps = draft === null
            ? this.feed(seq, tokens, fed, total, promptLen, req, fork, n, stopIds, kv > fed)
            : this.verify(seq, tokens, total, draft.tokens, promptLen, req, kv > fed);
          if (draft === null && n > 1 && speculator !== null) burst = Math.min(MAX_BURST, burst * 2);
          // Wall time per decode outcome, including the gateway's own work on it (a constraint's
          // picks over k+1 rows): what drafting is weighed against.
          let since = performance.now();
          for await (const out of steps) {
            if (fork !== null) {
              fork.entry.inUse--;
              fork = null;
            }
            const decodePass = fed > 0 && fed === total - 1;
            // Every token up to the one just sampled is in the KV now (and a verify step's drafts).
            fed = total;
            kv = total + (draft?.tokens.length ?? 0);
            if (isAborted(signal)) {
              finished = 'cancelled';
              break;
            }
            // The target's choice after each position asked for: one, or k+1 for a verify step.
            // Choice i is kept when every draft before it was accepted; the run ends at the first
            // choice that differs from its draft (that choice is the step's new token).
            const drafts = draft?.tokens ?? [];
            const rows = drafts.length + 1;
            const base = total;
            let accepted = 0;
            for (let i = 0; i < rows; i++) {
              let tok: SampledToken | null = rows === 1 ? out.token : (out.tokens?.[i] ?? null);
              if (constraint !== undefined) {
                if (out.logits === undefined) throw new HearthError('HEARTH_ERR_ENGINE', ['constrained step returned no logits']);
                const v = out.logits.length / rows;
                tok = constraint.pick(rows === 1 ? out.logits : out.logits.subarray(i * v, (i + 1) * v), sampling, total);
                constraint.accept(tok.token);
              }
              if (tok === null) throw new HearthError('HEARTH_ERR_ENGINE', ['pipeline returned no token']);
              if (stop.has(tok.token)) {
                finished = 'stop';
                break;
              }
              yield { type: 'token', token: tok, index: generated };
              generated++;
              if (total === tokens.length) {
                const bigger = new Int32Array(tokens.length * 2);
                bigger.set(tokens);
                tokens = bigger;
              }
              tokens[total++] = tok.token;
              if (constraint?.done() === true) finished = 'stop';
              else if (generated >= maxTokens) finished = 'length';
              if (finished !== null || i === rows - 1 || tok.token !== drafts[i]) break;
              accepted++;
            }
            if (draft !== null) {
              speculator?.record(draft.source, drafts.length, accepted);
              this.spec.drafted += drafts.length;
              this.spec.accepted += accepted;
              // The KV holds the fed token and the accepted drafts; the rest is cut next step.
              fed = Math.min(base + accepted, total);
            }
            if (decodePass) {
              this.spec.passes++;
              this.spec.tokens += total - base;
              const now = performance.now();
              if (speculator !== null) this.passCost.observe(rows, now - since);
              since = now;
            }
            if (finished !== null) break;
            if (isAborted(signal)) {
              finished = 'cancelled';
              break;
            }
          }
        } catch (e) {
          if (fork !== null) {
            fork.entry.inUse--;
            fork = null;
          }
          // A stage that holds other positions than this sequence fed (HEARTH_ERR_KV_POSITION) has
          // lost its KV under it: a stage reloaded by a plan adopted while chunks of this sequence
          // were in flight (pipelined prefill), seen once in CI after a worker kill. Replaying is as
          // exact as after a lost stage, so it is handled the same way.
          const lost = isHearthError(e, 'HEARTH_ERR_PLAN_CHANGED') || isHearthError(e, 'HEARTH_ERR_KV_POSITION');
          if (!lost || attempt >= this.opts.maxReplays) throw e;
          // The plan it warmed is serving now: go on there from the positions it holds.
          const warm = mover.warm;
          mover.warm = null;
          if (warm !== null && !mover.warming && warm.epoch === this.pipeline.epoch() && warm.len < total) {
            this.pipeline.free(seq);
            attempt++;
            seq = warm.seq;
            fed = warm.len;
            kv = warm.len;
            this.opts.onMove?.(seq, warm.epoch, fed, total);
            continue;
          }
          if (warm !== null) this.pipeline.free(warm.seq);
          // A stage was lost: start over on the new plan with everything we have.
          this.pipeline.free(seq);
          attempt++;
          seq = this.newSeqId(req.id, attempt);
          fed = 0;
          kv = 0;
          this.opts.onReplay?.(seq, this.pipeline.epoch(), total);
          continue;
        }
      }
    } catch (e) {
      this.pipeline.free(seq);
      throw e;
    } finally {
      this.moves.untrack(mover);
      if (finished === null) {
        // The consumer stopped iterating (client went away) or we threw: free the KV everywhere.
        this.pipeline.free(seq);
      }
    }
    if (finished === 'cancelled' || fed === 0 || !this.prefix.add(seq, tokens.slice(0, fed), epoch)) {
      this.pipeline.free(seq);
    }
    yield { type: 'done', reason: finished, promptTokens: promptLen, completionTokens: generated };
  }

  /** Feeds tokens[fed, total) in prefill chunks; the last chunk samples the next token, and with
   *  n > 1 (and a pipeline that can) keeps decoding up to n tokens without a round trip here. */
  private async *feed(
    seq: string,
    tokens: Int32Array,
    fed: number,
    total: number,
    promptLen: number,
    req: GenerateRequest,
    fork: { entry: { seq: string; inUse: number }; len: number } | null,
    n: number,
    stop: readonly number[],
    rewind: boolean,
  ): AsyncGenerator<StepOutcome> {
    let pos = fed;
    let forkArg: { from: string; len: number } | undefined;
    if (fork !== null && fed === 0) {
      fork.entry.inUse++;
      forkArg = { from: fork.entry.seq, len: fork.len };
      pos = fork.len;
    }
    // Chunks before the last are not awaited one by one: they flow through the stages together
    // (a sequence's steps keep their order — one sender, and a stage runs a sequence's steps in
    // arrival order). The first error among them is the one reported.
    const inFlight: Promise<void>[] = [];
    let chunkError: { e: unknown } | null = null;
    for (;;) {
      // The prompt goes in prefill chunks on the same boundaries every time it is fed; generated
      // tokens (fed again only by a replay after a worker loss) go in exact chunks, which give the
      // bits their one-token decode steps gave: the replayed sequence goes on exactly where it was,
      // even where sampling over a flat distribution would flip on a 1e-5 difference.
      const generatedPart = pos >= promptLen;
      const end = chunkEnd(pos, total, promptLen, this.opts.prefillChunk);
      const last = end === total;
      const step = {
        seq,
        pos,
        tokens: tokens.slice(pos, end),
        promptLen,
        sampling: req.sampling,
        wantToken: last,
        wantLogits: last && req.constraint !== undefined,
        ...(forkArg === undefined ? {} : { fork: forkArg }),
        ...(generatedPart && end - pos > 1 ? { exact: true } : {}),
        ...(rewind ? { rewind: true } : {}),
      };
      forkArg = undefined;
      rewind = false;
      pos = end;
      if (!last) {
        inFlight.push(this.pipeline.step(step).then(() => undefined, (e: unknown) => { chunkError ??= { e }; }));
        if (inFlight.length >= PREFILL_WINDOW) await inFlight[inFlight.length - PREFILL_WINDOW];
        if (chunkError !== null) { await Promise.all(inFlight); throw (chunkError as { e: unknown }).e; }
        continue;
      }
      try {
        if (n > 1 && this.pipeline.decode !== undefined) yield* this.pipeline.decode(step, n, stop);
        else yield await this.pipeline.step(step);
      } catch (e) {
        // A chunk that failed first makes the last one fail too (its positions do not follow):
        // report the cause, not the echo.
        await Promise.all(inFlight);
        throw chunkError !== null ? (chunkError as { e: unknown }).e : e;
      }
      return;
    }
  }

  /** One pass that feeds the last token and the drafts after it and returns the target's choice
   *  after each of them: k+1 tokens, or k+1 rows of logits when a constraint picks. The chunk is
   *  `exact`: every position computed bit for bit as a one-token decode step computes it, so the
   *  choices are the ones decoding without speculation makes. */
  private async *verify(
    seq: string,
    tokens: Int32Array,
    total: number,
    drafts: readonly number[],
    promptLen: number,
    req: GenerateRequest,
    rewind: boolean,
  ): AsyncGenerator<StepOutcome> {
    const chunk = new Int32Array(drafts.length + 1);
    chunk[0] = tokens[total - 1]!;
    chunk.set(drafts, 1);
    yield await this.pipeline.step({
      seq,
      pos: total - 1,
      tokens: chunk,
      promptLen,
      sampling: req.sampling,
      // Under a constraint the gateway picks from the logits: the stage need not sample.
      wantToken: req.constraint === undefined,
      wantLogits: req.constraint !== undefined,
      choices: chunk.length,
      exact: true,
      ...(rewind ? { rewind: true } : {}),
    });
  }

  private newSeqId(id: string, attempt: number): string {
    return `${id}.${(this.nextSeq++).toString(36)}.${attempt}`;
  }
}

/** The per-request slot cap: the configured one, or half of maxConcurrent (at least 1). */
export function perRequestSlots(maxConcurrent: number, configured: number | null): number {
  const cap = configured ?? Math.ceil(maxConcurrent / 2);
  return Math.max(1, Math.min(maxConcurrent, cap));
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export function createScheduler(pipeline: Pipeline, opts: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler(pipeline, opts);
}
