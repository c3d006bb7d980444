import type { SampledToken, SamplingParams } from '../sampling/types.ts';

/** One trip through the pipeline for a sequence: feed tokens, get the next token sampled. */
export interface StepRequest {
  readonly seq: string;
  readonly pos: number;
  /** Tokens at positions pos..pos+tokens.length-1 (a prefill chunk or one decode token). */
  readonly tokens: Int32Array;
  /** Length of the original prompt: presence/frequency penalties count tokens after it. */
  readonly promptLen: number;
  readonly sampling: SamplingParams;
  /** Only the final chunk of a prefill needs a sampled token; earlier chunks resolve with null. */
  readonly wantToken: boolean;
  /** Return the full logits (constrained decoding samples at the gateway). */
  readonly wantLogits: boolean;
  readonly fork?: { readonly from: string; readonly len: number };
  /** Compute every position bit for bit as one-token steps would (see StageItem.exact): replayed
   *  generated tokens, speculative verification. */
  readonly exact?: boolean;
  /** pos may be below the stages' KV length for seq: every stage first cuts that KV back to pos.
   *  A speculative step's rejected drafts are rolled back this way, on the next step. */
  readonly rewind?: boolean;
  /** Verify step: the target's choice at each of the last `choices` positions (1..tokens.length;
   *  default 1). tokens = [last accepted, d1..dk] asks for k+1: the choice after each of them. */
  readonly choices?: number;
  /** An embedding step (issue 21): the last stage returns every position's final-normed hidden
   *  state ([tokens.length, hiddenSize] in StepOutcome.hidden) and samples nothing. */
  readonly wantHidden?: boolean;
  /** Address the step to the plan of this epoch, loaded but not yet serving (make before break,
   *  issue 22: a stream's context replayed into the next plan's KV while the old plan decodes it).
   *  Absent: the plan serving. Refused with PLAN_CHANGED when that plan is not (or no longer) the
   *  one warming or serving. */
  readonly epoch?: number;
}

export interface StepOutcome {
  /** The choice after the last position (choices = 1), or null when not asked for. */
  readonly token: SampledToken | null;
  /** choices > 1 (and wantToken): the target's choice after each of the last `choices` positions,
   *  each drawn with the (seed, position) RNG over the history including the drafts before it. */
  readonly tokens?: readonly SampledToken[];
  /** wantLogits: [choices, vocabSize] (the rows of the last `choices` positions). */
  readonly logits?: Float32Array;
  /** wantHidden: [tokens.length, hiddenSize] final-normed hidden states. */
  readonly hidden?: Float32Array;
}

/**
 * What the scheduler drives: an in-process chain of shard engines, or the NATS cluster.
 * `step` rejects with HearthError HEARTH_ERR_PLAN_CHANGED when a stage was lost mid-flight (the
 * scheduler replays the sequence), and HEARTH_ERR_NO_PLAN when nothing can serve.
 */
export interface Pipeline {
  step(req: StepRequest): Promise<StepOutcome>;
  /** Optional: runs req, then up to n − 1 further decode steps without the caller in the loop
   *  (the last stage feeds each sampled token back to stage 0), yielding each token as it is
   *  sampled; stops after a token in `stop`. The caller ends it early by returning from the
   *  iteration and freeing the sequence. Only for steps that need no logits. */
  decode?(req: StepRequest, n: number, stop: readonly number[]): AsyncIterable<StepOutcome>;
  /** Frees seq's KV on every stage. Fire and forget. */
  free(seq: string): void;
  /** Resolves when a plan can serve; rejects with HEARTH_ERR_NO_PLAN after timeoutMs. */
  waitReady(timeoutMs: number): Promise<void>;
  /** Current plan epoch (increments on every re-plan). */
  epoch(): number;
  /** Optional (make before break): fn runs when the next plan has loaded and takes steps on its
   *  own epoch (StepRequest.epoch) while the old plan still serves; the switch waits for fn's
   *  promise (bounded), so streams can warm the next plan's KV. Returns the unsubscribe. */
  onWarm?(fn: (epoch: number) => Promise<void>): () => void;
  close(): Promise<void>;
}

/** Grammar-constrained decoding hook (JSON schema / tool calls), implemented in chat/. */
export interface TokenConstraint {
  /** Picks the next token from full logits, never one the grammar rejects. `pos` seeds the RNG. */
  pick(logits: Float32Array, sampling: SamplingParams, pos: number): SampledToken;
  /** Advances the grammar by the chosen token. */
  accept(token: number): void;
  /** True once the grammar is complete: the sequence must end now. */
  done(): boolean;
  /** Grammar jump-forward: the tokens of the continuation the grammar forces from here (the
   *  only one it admits), at most `max`; empty where more than one continuation is possible. The
   *  scheduler uses them as drafts, so the model still verifies each (output stays exact). */
  forced?(max: number): readonly number[];
}

export interface GenerateRequest {
  readonly id: string;
  /** The API request this sequence belongs to (its n choices share it): the unit of fair slot
   *  shares. Default: id (a request of its own). */
  readonly group?: string;
  readonly prompt: Int32Array;
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  /** Token ids that end the sequence (not emitted). */
  readonly stopTokens: readonly number[];
  readonly constraint?: TokenConstraint;
  readonly signal?: AbortSignal;
  /** The caller must see each token before the next step runs (it matches stop strings on the
   *  text): no chained decode. Default false. */
  readonly stepwise?: boolean;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export type GenerateEvent =
  | { readonly type: 'token'; readonly token: SampledToken; readonly index: number }
  | { readonly type: 'done'; readonly reason: FinishReason; readonly promptTokens: number; readonly completionTokens: number };

export interface EmbedRequest {
  readonly id: string;
  /** The API request it belongs to (its inputs share one slot share, as a request's n choices do). */
  readonly group?: string;
  readonly tokens: Int32Array;
  readonly signal?: AbortSignal;
}

/** What the API layer drives. Implemented by scheduler/scheduler.ts over any Pipeline. */
export interface Generator {
  /** The final-normed hidden state of every position of req.tokens, [n, hiddenSize] (issue 21:
   *  embeddings pool them). Optional: a generator without it serves no embeddings. */
  hiddenStates?(req: EmbedRequest): Promise<Float32Array>;
  /** Yields tokens as they are sampled, then one 'done'. Aborting req.signal ends it with 'cancelled'. */
  generate(req: GenerateRequest): AsyncIterable<GenerateEvent>;
  /** Sequences running / waiting (queue depth for metrics and 429s). */
  load(): { readonly running: number; readonly waiting: number };
}
