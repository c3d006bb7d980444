// fitTokenizerToVocab: rewrites a byte-level BPE tokenizer.json + tokenizer_config.json so every id
// it can produce is below a model's vocab_size. A generated checkpoint (hearth make-model) ships the
// Qwen3 tokenizer, 151,669 ids with its specials; a Llama-3.x-shaped preset has 128,256 embedding
// rows, so without this nearly every chat request's specials (<|im_start|> = 151644) are past the
// vocab and refused (HEARTH_ERR_TOKEN_OUT_OF_VOCAB, issue 20).
//
// What it does, the way a vocabulary is cut in tokenizers' own BPE trainer (ids are ranks):
// - the added tokens (specials and chat-template tags: <|im_start|>, <|im_end|>, <think>,
//   <tool_call> …) move, in their order, to the top ids of the model's vocab, so the chat template,
//   eos and tool-call parsing keep working by content;
// - the BPE vocab keeps the ids below them (byte-level BPE puts its 256 byte symbols first, so any
//   text still encodes, in more and shorter tokens);
// - a merge survives only when both parts and the result survive (BPE merges whose output no
//   longer exists would produce unknown tokens).
// Pure: JSON in, JSON out; loading and round-trips are checked with the maintained libraries.

type Json = Record<string, unknown>;

interface AddedToken { readonly id: number; readonly content: string; readonly [k: string]: unknown }

export interface FittedTokenizer {
  readonly tokenizerJson: Json;
  readonly tokenizerConfig: Json;
  /** Old id → new id of every added token (specials); base-vocab ids keep their numbers. */
  readonly addedIdMap: ReadonlyMap<number, number>;
  /** Ids the tokenizer can produce: vocabSize when it was cut, else its own (smaller) size. */
  readonly size: number;
}

/** Byte-level BPE's 256 byte symbols: a vocab smaller than these plus the specials cannot encode text. */
const BYTE_SYMBOLS = 256;

function tokenizerSize(tj: Json): number {
  const model = tj['model'] as { vocab?: Record<string, number> } | undefined;
  let max = -1;
  for (const id of Object.values(model?.vocab ?? {})) max = Math.max(max, id);
  for (const a of addedTokens(tj)) max = Math.max(max, a.id);
  return max + 1;
}

function addedTokens(tj: Json): AddedToken[] {
  return (Array.isArray(tj['added_tokens']) ? tj['added_tokens'] : []) as AddedToken[];
}

/** A merge is either "a b" (older tokenizer.json) or ["a", "b"] (tokenizers ≥ 0.20). */
function mergeParts(m: unknown): [string, string] | null {
  if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
  if (typeof m === 'string') {
    const i = m.indexOf(' ', 1);
    return i < 0 ? null : [m.slice(0, i), m.slice(i + 1)];
  }
  return null;
}

/**
 * Returns the tokenizer cut to `vocabSize` ids. When it already fits, the inputs come back as they
 * are (size = its own). Throws when the vocab cannot hold the byte symbols plus the added tokens, or
 * the tokenizer is not a BPE one (SentencePiece-Unigram vocabularies are not ranked by id).
 */
export function fitTokenizerToVocab(tokenizerJson: Json, tokenizerConfig: Json, vocabSize: number): FittedTokenizer {
  const size = tokenizerSize(tokenizerJson);
  if (size <= vocabSize) return { tokenizerJson, tokenizerConfig, addedIdMap: new Map(), size };
  const model = tokenizerJson['model'] as { type?: string; vocab?: Record<string, number>; merges?: unknown[] } | undefined;
  if (model?.type !== 'BPE' || model.vocab === undefined) throw new Error(`cannot cut a ${String(model?.type)} tokenizer to ${vocabSize} ids (BPE only)`);
  const added = addedTokens(tokenizerJson);
  const baseSize = vocabSize - added.length;
  if (baseSize < BYTE_SYMBOLS) throw new Error(`vocab_size ${vocabSize} is too small for this tokenizer: it needs ${BYTE_SYMBOLS} byte symbols + ${added.length} added tokens`);

  const addedIdMap = new Map<number, number>();
  added.forEach((a, i) => addedIdMap.set(a.id, baseSize + i));
  const addedContents = new Set(added.map((a) => a.content));

  // Base ids that collide with an added token's old id are dropped as well (the added token owns it).
  const vocab: Record<string, number> = {};
  for (const [piece, id] of Object.entries(model.vocab)) {
    if (id < baseSize && !addedContents.has(piece)) vocab[piece] = id;
  }
  const merges = (model.merges ?? []).filter((m) => {
    const p = mergeParts(m);
    return p !== null && p[0] in vocab && p[1] in vocab && p[0] + p[1] in vocab;
  });

  const tj: Json = {
    ...tokenizerJson,
    added_tokens: added.map((a) => ({ ...a, id: addedIdMap.get(a.id) as number })),
    model: { ...model, vocab, merges },
  };
  const tc: Json = { ...tokenizerConfig };
  const decoder = tokenizerConfig['added_tokens_decoder'];
  if (decoder !== null && typeof decoder === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(decoder as Json)) {
      const id = addedIdMap.get(Number(k));
      if (id !== undefined) out[String(id)] = v;
    }
    tc['added_tokens_decoder'] = out;
  }
  return { tokenizerJson: tj, tokenizerConfig: tc, addedIdMap, size: vocabSize };
}
