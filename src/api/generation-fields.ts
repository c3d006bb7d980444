import { randomInt } from 'node:crypto';
import { HearthError } from '../errors/index.ts';
import { MAX_LOGIT_BIAS, makeSamplingParams } from '../sampling/index.ts';
import type { SamplingParams } from '../sampling/types.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { SamplingBody } from './openai-types.ts';
import { wellFormed } from './messages.ts';

// Fields chat and legacy completions share: sampling, seeds, stops, n, max tokens, context checks.

/** OpenAI allows at most 4 stop sequences (the schema enforces it); empty strings are dropped. */
export function stopStrings(stop: SamplingBody['stop']): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : [...stop];
  return list.filter((s) => s.length > 0).map(wellFormed);
}

/** 64-bit OpenAI seeds folded to the 32 bits the sampler's RNG takes; a random one when absent. */
export function baseSeed(seed: number | null | undefined): number {
  if (seed === undefined || seed === null) return randomInt(0, 2 ** 31);
  return Number(BigInt.asUintN(32, BigInt(Math.trunc(seed))));
}

/**
 * logit_bias keys are token ids as strings ("50256"); anything else is a 400 naming the key. At most
 * 300 entries (OpenAI's bound), checked before looking at any of them.
 */
export function logitBias(bias: SamplingBody['logit_bias'], vocabSize: number): Record<number, number> | null {
  if (bias === undefined || bias === null) return null;
  const count = Object.keys(bias).length;
  if (count > MAX_LOGIT_BIAS) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid 'logit_bias': expected at most ${MAX_LOGIT_BIAS} entries, got ${count}.`], { param: 'logit_bias' });
  }
  const out: Record<number, number> = {};
  let any = false;
  for (const [k, v] of Object.entries(bias)) {
    const id = /^\d{1,10}$/.test(k) ? Number(k) : NaN;
    if (!Number.isInteger(id) || id >= vocabSize) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid key in 'logit_bias': '${k.slice(0, 32)}' is not a token id of this model (0..${vocabSize - 1}).`], { param: 'logit_bias' });
    }
    out[id] = v;
    any = true;
  }
  return any ? out : null;
}

/**
 * One SamplingParams per choice: choice i samples with seed+i, so n choices differ from each other
 * yet each is reproducible (the same request with the same seed gives the same n texts).
 */
export function samplingPerChoice(body: SamplingBody, n: number, topLogprobs: number, vocabSize: number): SamplingParams[] {
  const seed = baseSeed(body.seed);
  const bias = logitBias(body.logit_bias, vocabSize);
  const topK = body.top_k ?? 0;
  const base = {
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: topK < 0 ? 0 : topK,
    minP: body.min_p ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    logitBias: bias,
    topLogprobs,
  };
  const out: SamplingParams[] = [];
  for (let i = 0; i < n; i++) out.push(makeSamplingParams({ ...base, seed: (seed + i) >>> 0 }));
  return out;
}

const maxTokenBytes = new WeakMap<Tokenizer, number>();

/**
 * The most bytes one token of this vocabulary spells. A text of more than contextLength × that many
 * UTF-16 units cannot fit whatever the tokenizer does, so a hostile megabyte prompt is refused
 * without tokenizing it (a UTF-16 unit is at least one UTF-8 byte).
 */
export function longestToken(tok: Tokenizer): number {
  let m = maxTokenBytes.get(tok);
  if (m === undefined) {
    m = 1;
    for (let id = 0; id < tok.vocabSize; id++) {
      try {
        m = Math.max(m, tok.tokenBytes(id).length);
      } catch {
        // ids past the tokenizer's vocabulary (padded embeddings) spell nothing
      }
    }
    maxTokenBytes.set(tok, m);
  }
  return m;
}

export function contextError(contextLength: number, promptTokens: number, param: string): HearthError {
  return new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [contextLength, promptTokens, ''], { param });
}

/** Throws context_length_exceeded when text of `chars` UTF-16 units surely exceeds the context. */
export function precheckLength(tok: Tokenizer, contextLength: number, chars: number, param: string): void {
  // Template markup adds tokens, never removes them; a lower bound on the token count suffices.
  const minTokens = Math.floor(chars / longestToken(tok));
  if (minTokens >= contextLength) throw new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [contextLength, minTokens, ' or more'], { param });
}

/**
 * The completion budget, as OpenAI and Anthropic define it (issue 21): a prompt that leaves no room
 * is context_length_exceeded; a requested max_tokens is honoured exactly or refused — over the room
 * the context leaves after the prompt, or over the operator's cap (limits.maxTokens), it is a 400
 * naming that limit, never a silent cut (an agent that asked for 32,000 and got 4,096 sees a length
 * stop it cannot explain). Absent, the operator's default applies if set, else the context's end.
 * Every API calls this: chat, completions, responses, and Anthropic messages (via its chat body).
 */
export function completionBudget(requested: number | null | undefined, promptTokens: number, contextLength: number, defaultMax: number | null | undefined, param: string, cap: number | null | undefined = null): number {
  const room = contextLength - promptTokens;
  if (room <= 0) throw contextError(contextLength, promptTokens, param);
  if (requested !== undefined && requested !== null) {
    if (cap !== null && cap !== undefined && requested > cap) throw new HearthError('HEARTH_ERR_MAX_TOKENS_CAP', [param, requested, cap], { param });
    if (requested > room) throw new HearthError('HEARTH_ERR_MAX_TOKENS_CONTEXT', [contextLength, promptTokens + requested, promptTokens, requested, param], { param });
    return requested;
  }
  return Math.min(room, cap ?? room, defaultMax ?? room);
}

/** The limit a request ran under, as the Responses API echoes it in max_output_tokens: the one asked
 *  for, else the operator's default or cap; null when only the context bounds it. */
export function appliedLimit(requested: number | null | undefined, defaultMax: number | null | undefined, cap: number | null | undefined): number | null {
  if (requested !== undefined && requested !== null) return requested;
  const d = defaultMax ?? null;
  const c = cap ?? null;
  if (d === null) return c;
  return c === null ? d : Math.min(d, c);
}
