import type { SampledToken } from '../sampling/types.ts';
import type { Tokenizer } from '../tokenizer/types.ts';

// Logprobs in OpenAI's two shapes: chat (`logprobs.content[]` of {token, logprob, bytes,
// top_logprobs[]}) and legacy completions (parallel arrays tokens / token_logprobs / top_logprobs /
// text_offset). A token's string is its bytes read as UTF-8; a token that is only part of a
// character reads as U+FFFD, and `bytes` carries the exact bytes (what OpenAI's `bytes` is for).

export interface TopLogprob {
  readonly token: string;
  readonly logprob: number;
  readonly bytes: number[];
}

export interface ChatTokenLogprob extends TopLogprob {
  readonly top_logprobs: TopLogprob[];
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

function entry(tok: Tokenizer, id: number, logprob: number): TopLogprob {
  const bytes = tok.tokenBytes(id);
  // -Infinity (a token masked out by a constraint or logit_bias) is not JSON; OpenAI's floor is -9999.
  return { token: utf8.decode(bytes), logprob: Number.isFinite(logprob) ? logprob : -9999, bytes: Array.from(bytes) };
}

/** One chat logprobs entry for a sampled token (null when the sampler returned no logprob). */
export function chatLogprob(tok: Tokenizer, s: SampledToken): ChatTokenLogprob | null {
  if (s.logprob === undefined) return null;
  return { ...entry(tok, s.token, s.logprob), top_logprobs: (s.top ?? []).map((t) => entry(tok, t.token, t.logprob)) };
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export function emptyCompletionLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

/** Appends a sampled token to completion logprobs; `offset` is its start in the choice's text. */
export function pushCompletionLogprob(out: CompletionLogprobs, lp: ChatTokenLogprob, offset: number): void {
  out.tokens.push(lp.token);
  out.token_logprobs.push(lp.logprob);
  // A null prototype: a token spelled "__proto__" must be a key, not a prototype change.
  const top = Object.create(null) as Record<string, number>;
  for (const t of lp.top_logprobs) if (!(t.token in top)) top[t.token] = t.logprob;
  out.top_logprobs.push(top);
  out.text_offset.push(offset);
}
