// Request-level sampling options → a frozen SamplingParams, validated once at the edge so that
// the hot path never checks ranges. Ranges follow OpenAI's API (temperature 0–2, penalties −2–2,
// logit_bias −100–100, top_logprobs 0–20) and vLLM's extensions (top_k, min_p, repetition_penalty).
import { HearthError } from '../errors/index.ts';
import type { SamplingParams } from './types.ts';

/** Defaults as OpenAI documents them (temperature 1, top_p 1, no penalties), no logprobs. */
export const SAMPLING_DEFAULTS = Object.freeze({
  temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0,
  frequencyPenalty: 0, logitBias: null, topLogprobs: -1,
}) satisfies Omit<SamplingParams, 'seed'>;

export const MAX_TOP_LOGPROBS = 20;
/** OpenAI's own bound on logit_bias entries. Unbounded, one request could make a step message too
 *  big to encode (msgpack maps stop at 65,535 keys) and every step carry megabytes. */
export const MAX_LOGIT_BIAS = 300;

export type SamplingInput = { readonly [K in keyof SamplingParams]?: SamplingParams[K] | undefined };

function fail(param: string, message: string): never {
  throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${param}': ${message}`], { param });
}

function num(param: string, v: number, min: number, max: number, opts: { minOpen?: boolean; integer?: boolean } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(param, `expected a number, got ${String(v)}.`);
  if (opts.integer === true && !Number.isInteger(v)) fail(param, `expected an integer, got ${v}.`);
  if (opts.minOpen === true ? v <= min : v < min) fail(param, `${v} is ${opts.minOpen === true ? 'less than or equal to' : 'less than'} the minimum of ${min}.`);
  if (v > max) fail(param, `${v} is greater than the maximum of ${max}.`);
  return v;
}

/**
 * Fills defaults and validates. Errors are HearthError HEARTH_ERR_INVALID_REQUEST with `param` set to
 * the OpenAI/vLLM field name. Without a seed a random one is drawn and stored, so the sequence can
 * still be replayed exactly after a node loss. vocabSize, when given, bounds logit_bias keys.
 */
export function makeSamplingParams(partial: SamplingInput = {}, opts: { vocabSize?: number } = {}): SamplingParams {
  const d = SAMPLING_DEFAULTS;
  const temperature = num('temperature', partial.temperature ?? d.temperature, 0, 2);
  const topK = num('top_k', partial.topK ?? d.topK, 0, Number.MAX_SAFE_INTEGER, { integer: true });
  // top_p 0 is accepted (OpenAI's range is inclusive): it keeps only the top token, i.e. greedy.
  const topP = num('top_p', partial.topP ?? d.topP, 0, 1);
  const minP = num('min_p', partial.minP ?? d.minP, 0, 1);
  const repetitionPenalty = num('repetition_penalty', partial.repetitionPenalty ?? d.repetitionPenalty, 0, 10, { minOpen: true });
  const presencePenalty = num('presence_penalty', partial.presencePenalty ?? d.presencePenalty, -2, 2);
  const frequencyPenalty = num('frequency_penalty', partial.frequencyPenalty ?? d.frequencyPenalty, -2, 2);
  const topLogprobs = num('top_logprobs', partial.topLogprobs ?? d.topLogprobs, -1, MAX_TOP_LOGPROBS, { integer: true });
  const seed = partial.seed ?? Math.floor(Math.random() * 2 ** 32);
  if (!Number.isSafeInteger(seed)) fail('seed', `expected an integer, got ${String(seed)}.`);

  let logitBias: Readonly<Record<number, number>> | null = null;
  const lb = partial.logitBias;
  if (lb !== undefined && lb !== null) {
    if (typeof lb !== 'object' || Array.isArray(lb)) fail('logit_bias', 'expected an object mapping token ids to biases.');
    const count = Object.keys(lb).length;
    if (count > MAX_LOGIT_BIAS) fail('logit_bias', `expected at most ${MAX_LOGIT_BIAS} entries, got ${count}.`);
    const out: Record<number, number> = {};
    let n = 0;
    for (const [key, value] of Object.entries(lb)) {
      const id = Number(key);
      if (key.trim() === '' || !Number.isInteger(id) || id < 0) fail('logit_bias', `${JSON.stringify(key)} is not a token id.`);
      if (opts.vocabSize !== undefined && id >= opts.vocabSize) fail('logit_bias', `token id ${id} is out of vocabulary (size ${opts.vocabSize}).`);
      num('logit_bias', value as number, -100, 100);
      out[id] = value as number;
      n++;
    }
    logitBias = n === 0 ? null : Object.freeze(out);
  }
  return Object.freeze({ temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, logitBias, seed, topLogprobs });
}
