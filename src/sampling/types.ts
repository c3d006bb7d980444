/** Per-sequence sampling parameters, fixed for the life of a sequence. Travels on the wire. */
export interface SamplingParams {
  /** 0 = greedy. */
  readonly temperature: number;
  /** 0 = off. */
  readonly topK: number;
  /** 1 = off. */
  readonly topP: number;
  /** 0 = off. */
  readonly minP: number;
  /** 1 = off (HF/llama.cpp style: divide positive logits, multiply negative). */
  readonly repetitionPenalty: number;
  /** OpenAI semantics: subtract once per token present in the generated text. */
  readonly presencePenalty: number;
  /** OpenAI semantics: subtract count × penalty. */
  readonly frequencyPenalty: number;
  /** token id → bias added to the logit (OpenAI logit_bias, −100..100). */
  readonly logitBias: Readonly<Record<number, number>> | null;
  /** Same seed → same tokens. The RNG for step i is derived from (seed, i), so a replay repeats it. */
  readonly seed: number;
  /** Number of top alternatives to return with logprobs; −1 = no logprobs at all. */
  readonly topLogprobs: number;
}

export interface TokenLogprob {
  readonly token: number;
  readonly logprob: number;
}

/** What sampling one position produced. */
export interface SampledToken {
  readonly token: number;
  /** Present when topLogprobs ≥ 0. */
  readonly logprob?: number;
  readonly top?: readonly TokenLogprob[];
}

export const GREEDY: SamplingParams = Object.freeze({
  temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0,
  frequencyPenalty: 0, logitBias: null, seed: 0, topLogprobs: -1,
});
