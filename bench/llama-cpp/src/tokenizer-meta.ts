// tokenizer.json (+ tokenizer_config.json) → the tokenizer.ggml.* metadata llama.cpp reads, as
// llama.cpp's convert_hf_to_gguf.py writes it: byte-level BPE as model "gpt2" with merges and a
// pre-tokenizer name; SentencePiece-style BPE with byte fallback (TinyStories, Llama 2) as "llama"
// with scores. The token list is padded to the model's vocab_size with "[PADn]" UNUSED tokens.

import fs from 'node:fs';
import path from 'node:path';
import { arr, bool, GV, str, u32, type MetaValue } from './gguf-file.ts';

/** llama_token_type (llama.cpp/gguf-py TokenType). */
const TT = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

interface TokenizerJson {
  model: { type: string; vocab: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; unk_token?: string | null };
  added_tokens?: { id: number; content: string; special: boolean }[];
  pre_tokenizer?: unknown;
  normalizer?: unknown;
}

export interface SpecialIds {
  readonly bos: number | null;
  readonly eos: number | null;
  readonly pad: number | null;
}

/** convert_hf_to_gguf.py's does_token_look_special. */
function looksSpecial(t: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) || (t.startsWith('<|') && t.endsWith('|>')) || (t.startsWith('<unused') && t.endsWith('>'));
}

/**
 * The pre-tokenizer name llama.cpp keys its split regex on: Qwen2's regex splits digits one by
 * one ("\p{N}"), Llama 3's in runs of up to three ("\p{N}{1,3}").
 */
function preName(family: string, preTokenizer: unknown): string {
  const text = JSON.stringify(preTokenizer ?? null);
  if (family === 'qwen2' || family === 'qwen3') return 'qwen2';
  if (text.includes('\\\\p{N}{1,3}')) return 'llama-bpe';
  if (text.includes('\\\\p{N}')) return 'qwen2';
  return 'default';
}

export function tokenizerMeta(dir: string, family: string, vocabSize: number, ids: SpecialIds): Map<string, MetaValue> {
  const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const cfgPath = path.join(dir, 'tokenizer_config.json');
  const tcfg = fs.existsSync(cfgPath) ? (JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as { add_bos_token?: boolean; chat_template?: unknown }) : {};
  if (tok.model.type !== 'BPE') throw new Error(`tokenizer.json model type ${tok.model.type} is not supported (BPE only)`);
  const spm = tok.model.byte_fallback === true;

  const text: string[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TT.UNUSED);
  for (const [t, id] of Object.entries(tok.model.vocab)) {
    if (id >= vocabSize) continue;
    text[id] = t;
    types[id] = spm && /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? TT.BYTE : TT.NORMAL;
  }
  for (const a of tok.added_tokens ?? []) {
    if (a.id >= vocabSize) continue;
    text[a.id] = a.content;
    types[a.id] = a.special || looksSpecial(a.content) ? TT.CONTROL : TT.USER_DEFINED;
  }
  for (let i = 0; i < vocabSize; i++) if (text[i] === undefined) text[i] = `[PAD${i}]`;

  const merges = (tok.model.merges ?? []).map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const meta = new Map<string, MetaValue>();
  meta.set('tokenizer.ggml.model', str(spm ? 'llama' : 'gpt2'));
  if (!spm) meta.set('tokenizer.ggml.pre', str(preName(family, tok.pre_tokenizer)));
  meta.set('tokenizer.ggml.tokens', arr(GV.STRING, text));
  if (spm) {
    // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined piece scores
    // highest; BPE merges the pair of lowest rank. Scoring each piece by minus the rank of the
    // merge that makes it gives the same order.
    const scores = new Array<number>(vocabSize).fill(0);
    const seen = new Set<string>();
    merges.forEach((m, rank) => {
      const piece = m.replace(' ', '');
      const id = tok.model.vocab[piece];
      if (id !== undefined && id < vocabSize && !seen.has(piece)) {
        seen.add(piece);
        scores[id] = -rank;
      }
    });
    meta.set('tokenizer.ggml.scores', arr(GV.F32, scores));
  }
  meta.set('tokenizer.ggml.token_type', arr(GV.I32, types));
  if (!spm) meta.set('tokenizer.ggml.merges', arr(GV.STRING, merges));
  if (ids.bos !== null) meta.set('tokenizer.ggml.bos_token_id', u32(ids.bos));
  if (ids.eos !== null) meta.set('tokenizer.ggml.eos_token_id', u32(ids.eos));
  if (ids.pad !== null) meta.set('tokenizer.ggml.padding_token_id', u32(ids.pad));
  const unk = tok.model.unk_token;
  if (spm && typeof unk === 'string' && tok.model.vocab[unk] !== undefined) meta.set('tokenizer.ggml.unknown_token_id', u32(tok.model.vocab[unk] as number));
  meta.set('tokenizer.ggml.add_bos_token', bool(tcfg.add_bos_token ?? spm));
  if (spm) {
    // A "Prepend ▁" normalizer is SentencePiece's add_dummy_prefix.
    meta.set('tokenizer.ggml.add_space_prefix', bool(JSON.stringify(tok.normalizer ?? null).includes('"Prepend"')));
  }
  // convert_hf_to_gguf.py (gguf-py SpecialVocab) carries the jinja chat template as is.
  if (typeof tcfg.chat_template === 'string') meta.set('tokenizer.chat_template', str(tcfg.chat_template));
  return meta;
}
