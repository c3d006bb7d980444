// A GGUF's own tokenizer (tokenizer.ggml.* metadata, as llama.cpp's convert_hf_to_gguf.py writes it)
// → the tokenizer.json + tokenizer_config.json that @huggingface/tokenizers loads, so a lone .gguf is
// enough. No tokenizing happens here: this only writes the library's input, the way transformers'
// GGUF loader does (integrations/ggml.py, GGUFLlamaConverter / GGUFQwen2Converter):
// - "llama" (SentencePiece): BPE with byte fallback; merges are every split of a piece into two
//   pieces of the vocab, ranked by the joined piece's score (SentencePiece's BPE merges the
//   adjacent pair whose join scores highest, which is what llama.cpp's llm_tokenizer_spm does).
// - "gpt2" (byte-level BPE): tokens and merges as stored, the split regex llama.cpp keys on
//   tokenizer.ggml.pre (llama-vocab.cpp), byte-level decoding.

type Json = Record<string, unknown>;
type Meta = ReadonlyMap<string, unknown>;

/** llama_token_type (gguf-py TokenType). */
const TT = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** llama-vocab.cpp's split regexes for the pre-tokenizers hearth's families use. */
const PRE_REGEX: Readonly<Record<string, string>> = {
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  'llama3': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

export interface GgufTokenizerFiles {
  readonly tokenizerJson: Json;
  readonly tokenizerConfig: Json;
}

function list<T>(meta: Meta, key: string): T[] | null {
  const v = meta.get(key);
  return Array.isArray(v) ? (v as T[]) : null;
}

function num(meta: Meta, key: string): number | undefined {
  const v = meta.get(key);
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
}

function bool(meta: Meta, key: string): boolean | undefined {
  const v = meta.get(key);
  return typeof v === 'boolean' ? v : undefined;
}

/** Merges of a SentencePiece vocab from its scores (transformers' GGUFTokenizerSkeleton). */
function spmMerges(tokens: readonly string[], scores: readonly number[], types: readonly number[]): [string, string][] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const merges: { l: string; r: string; score: number }[] = [];
  tokens.forEach((piece, i) => {
    // Control, byte and unused entries are never the result of a merge.
    if (types[i] !== undefined && types[i] !== TT.NORMAL && types[i] !== TT.USER_DEFINED) return;
    const chars = [...piece];
    const local: { l: string; r: string; score: number }[] = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('');
      const r = chars.slice(k).join('');
      if (ids.has(l) && ids.has(r)) local.push({ l, r, score: scores[i] ?? 0 });
    }
    local.sort((a, b) => (ids.get(a.l)! - ids.get(b.l)!) || (ids.get(a.r)! - ids.get(b.r)!));
    merges.push(...local);
  });
  // Stable: equal scores keep vocab order, as Python's sorted does.
  merges.sort((a, b) => b.score - a.score);
  return merges.map((m) => [m.l, m.r]);
}

/** The tokenizer files a GGUF's metadata describes, or null when it has no tokenizer.ggml.tokens. */
export function ggufTokenizerFiles(meta: Meta, chatTemplate?: string): GgufTokenizerFiles | null {
  const tokens = list<string>(meta, 'tokenizer.ggml.tokens');
  if (tokens === null) return null;
  const kind = meta.get('tokenizer.ggml.model');
  const types = list<number>(meta, 'tokenizer.ggml.token_type') ?? [];
  const bos = num(meta, 'tokenizer.ggml.bos_token_id');
  const eos = num(meta, 'tokenizer.ggml.eos_token_id');
  const unk = num(meta, 'tokenizer.ggml.unknown_token_id');
  const pad = num(meta, 'tokenizer.ggml.padding_token_id');
  const spm = kind === 'llama';
  if (!spm && kind !== 'gpt2') throw new Error(`tokenizer.ggml.model ${JSON.stringify(kind)} (hearth reads "llama" and "gpt2")`);
  const addBos = bool(meta, 'tokenizer.ggml.add_bos_token') ?? spm;
  const addEos = bool(meta, 'tokenizer.ggml.add_eos_token') ?? false;

  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  const added: Json[] = [];
  tokens.forEach((t, i) => {
    const ty = types[i];
    if (ty === TT.CONTROL || ty === TT.USER_DEFINED || (spm && ty === TT.UNKNOWN)) {
      added.push({ id: i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: ty !== TT.USER_DEFINED });
    }
  });
  const tokenAt = (id: number | undefined): string | null => (id === undefined ? null : (tokens[id] ?? null));

  let model: Json;
  let normalizer: Json | null = null;
  let preTokenizer: Json | null = null;
  let decoder: Json;
  if (spm) {
    const scores = list<number>(meta, 'tokenizer.ggml.scores') ?? [];
    const addSpace = bool(meta, 'tokenizer.ggml.add_space_prefix') ?? true;
    model = {
      type: 'BPE', dropout: null, unk_token: tokenAt(unk ?? 0), continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: spmMerges(tokens, scores, types),
    };
    normalizer = {
      type: 'Sequence',
      normalizers: [...(addSpace ? [{ type: 'Prepend', prepend: '▁' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
    };
    decoder = {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(addSpace ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    };
  } else {
    const merges = (list<string>(meta, 'tokenizer.ggml.merges') ?? []).map((m) => {
      const at = m.indexOf(' ', 1);
      return [m.slice(0, at), m.slice(at + 1)];
    });
    model = { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges };
    const pre = meta.get('tokenizer.ggml.pre');
    const regex = typeof pre === 'string' ? PRE_REGEX[pre] : undefined;
    preTokenizer = regex === undefined
      ? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
      : {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
            { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
          ],
        };
    decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  }

  const bosTok = tokenAt(bos);
  const eosTok = tokenAt(eos);
  const single: Json[] = [];
  const special: Json = {};
  if (addBos && bosTok !== null && bos !== undefined) {
    single.push({ SpecialToken: { id: bosTok, type_id: 0 } });
    special[bosTok] = { id: bosTok, ids: [bos], tokens: [bosTok] };
  }
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (addEos && eosTok !== null && eos !== undefined) {
    single.push({ SpecialToken: { id: eosTok, type_id: 0 } });
    special[eosTok] = { id: eosTok, ids: [eos], tokens: [eosTok] };
  }
  const tokenizerJson: Json = {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer, pre_tokenizer: preTokenizer,
    post_processor: { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: special },
    decoder, model,
  };
  const tokenizerConfig: Json = {
    add_bos_token: addBos, add_eos_token: addEos, clean_up_tokenization_spaces: false,
    bos_token: addBos ? bosTok : null, eos_token: eosTok, unk_token: tokenAt(unk), pad_token: tokenAt(pad),
    ...(spm ? { legacy: false } : {}),
    ...(chatTemplate !== undefined && chatTemplate !== '' ? { chat_template: chatTemplate } : {}),
  };
  return { tokenizerJson, tokenizerConfig };
}
