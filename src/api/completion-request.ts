import { HearthError } from '../errors/index.ts';
import type { SamplingParams } from '../sampling/types.ts';
import { checkModel } from './chat-request.ts';
import { fimPrompt, fimTokens, noFim } from './fim.ts';
import { completionBudget, contextError, precheckLength, samplingPerChoice, stopStrings } from './generation-fields.ts';
import { wellFormed } from './messages.ts';
import type { CompletionRequestBody } from './openai-types.ts';
import type { ApiLimits, ServedModel } from './types.ts';
import { encodeOffLoop } from '../chat/encode-off-loop.ts';

// A validated legacy completion request → prompts (raw text, no chat template; strings or token
// ids, one or several), per-choice sampling, stops and budgets. Pure, like chat-request.ts.

/** OpenAI's default for this endpoint (chat's default is "as long as it takes"). */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export interface CompletionPlan {
  readonly prompts: readonly { readonly ids: Int32Array; readonly text: string }[];
  readonly n: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly echo: boolean;
  /** −1 = no logprobs. */
  readonly logprobs: number;
  readonly maxTokens: readonly number[];
  readonly sampling: readonly SamplingParams[];
  readonly stops: readonly string[];
  readonly stopTokens: readonly number[];
}

/**
 * planCompletion for the route: big text prompts are tokenized off the event loop first (within
 * a deadline, encode-off-loop.ts), then planned with those ids. FIM prompts are tokenized in
 * parts by fim.ts, inline.
 */
export async function planCompletionOffLoop(body: CompletionRequestBody, model: ServedModel, limits?: ApiLimits): Promise<CompletionPlan> {
  checkModel(body.model, model);
  const encoded = new Map<string, Int32Array>();
  if (!(typeof body.suffix === 'string' && body.suffix !== '')) {
    const list = promptList(body.prompt);
    for (let k = 0; k < list.length; k++) {
      const p = list[k];
      if (typeof p !== 'string') continue;
      const text = wellFormed(p);
      const param = typeof body.prompt === 'string' ? 'prompt' : `prompt[${k}]`;
      // The cheap bound first: a prompt that surely overflows the context is never tokenized.
      precheckLength(model.tokenizer, model.contextLength, text.length, param);
      if (!encoded.has(text)) encoded.set(text, await encodeOffLoop(model.tokenizer, text, { addSpecialTokens: true, param }));
    }
  }
  return planCompletion(body, model, limits, encoded);
}

export function planCompletion(body: CompletionRequestBody, model: ServedModel, limits?: ApiLimits, encoded?: ReadonlyMap<string, Int32Array>): CompletionPlan {
  checkModel(body.model, model);
  const tok = model.tokenizer;
  const n = body.n ?? 1;
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== n) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'best_of': hearth does not rank candidates; omit it or set it equal to 'n'."], { param: 'best_of' });
  }
  // Fill-in-the-middle (fim.ts): the prompt is the text before the cursor, suffix the text after.
  const suffix = typeof body.suffix === 'string' && body.suffix !== '' ? wellFormed(body.suffix) : null;
  const fim = suffix === null ? null : fimTokens(tok);
  if (suffix !== null && fim === null) throw noFim(model.id);
  if (suffix !== null && body.echo === true) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'echo': 'echo' cannot be used with 'suffix'."], { param: 'echo' });
  }
  const logprobs = body.logprobs ?? -1;
  if (body.echo === true && logprobs >= 0) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'logprobs': 'echo' with 'logprobs' (prompt logprobs) is not supported."], { param: 'logprobs' });
  }
  const prompts = promptList(body.prompt).map((p, k) => {
    const param = typeof body.prompt === 'string' ? 'prompt' : `prompt[${k}]`;
    if (typeof p === 'string') {
      const text = wellFormed(p);
      precheckLength(tok, model.contextLength, text.length + (suffix?.length ?? 0), param);
      if (fim !== null) return { ids: fimPrompt(fim, tok, text, suffix!), text };
      return { ids: encoded?.get(text) ?? Int32Array.from(tok.encode(text, { addSpecialTokens: true })), text };
    }
    if (fim !== null) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'prompt': with 'suffix' the prompt must be text."], { param });
    for (const id of p) {
      if (id >= tok.vocabSize) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid token id ${id} in '${param}': this model's vocabulary has ${tok.vocabSize} tokens.`], { param });
    }
    return { ids: Int32Array.from(p), text: tok.decode(p) };
  });
  const maxTokens = prompts.map((p, k) => {
    if (p.ids.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid 'prompt': the prompt is empty."], { param: 'prompt' });
    const param = prompts.length === 1 ? 'prompt' : `prompt[${k}]`;
    if (p.ids.length >= model.contextLength) throw contextError(model.contextLength, p.ids.length, param);
    return body.max_tokens === 0 ? 0 : completionBudget(body.max_tokens, p.ids.length, model.contextLength, COMPLETIONS_DEFAULT_MAX_TOKENS, param, limits?.maxTokens);
  });
  return {
    prompts,
    n,
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
    echo: body.echo === true,
    logprobs,
    maxTokens,
    sampling: samplingPerChoice(body, n, logprobs, tok.vocabSize),
    stops: stopStrings(body.stop),
    stopTokens: fim === null ? tok.eosTokenIds : [...new Set([...tok.eosTokenIds, ...fim.stops])],
  };
}

function promptList(p: CompletionRequestBody['prompt']): (string | readonly number[])[] {
  if (typeof p === 'string') return [p];
  if (p.length === 0) return [];
  if (typeof p[0] === 'number') return [p as readonly number[]];
  return [...(p as readonly (string | readonly number[])[])];
}

