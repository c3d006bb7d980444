// loadTokenizer: tokenizer.json + tokenizer_config.json through @huggingface/tokenizers (the library
// does all of the encoding; nothing here re-implements BPE), plus the exact bytes of every token and
// eos/bos ids gathered from the configs the way transformers' GenerationConfig does.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { HearthError } from '../errors/index.ts';
import type { IncrementalDecoder, Tokenizer } from './types.ts';
import { byteLevelBytes } from './byte-level.ts';
import { fallbackByte, planDecoder, type DecoderPlan } from './decoder-plan.ts';
import { createIncrementalDecoder, type DecoderOptions, type DecoderSource } from './incremental-decoder.ts';

type Json = Record<string, unknown>;

interface AddedTokenJson { readonly id: number; readonly content: string; readonly special?: boolean }

async function readJson(file: string, required: boolean): Promise<Json | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, (e as Error).message], { cause: e });
  }
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, `invalid JSON: ${(e as Error).message}`], { cause: e });
  }
}

/** tokenizer_config's bos_token/eos_token are a string, an AddedToken object {content}, or null. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

/** The raw configs, for callers (chat template) that need more than the Tokenizer interface. */
export interface TokenizerFiles {
  readonly tokenizerJson: Json;
  readonly tokenizerConfig: Json;
  readonly generationConfig: Json | null;
  readonly modelConfig: Json | null;
}

export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const [tokenizerJson, tokenizerConfig, generationConfig, modelConfig] = await Promise.all([
    readJson(path.join(dir, 'tokenizer.json'), true),
    readJson(path.join(dir, 'tokenizer_config.json'), false),
    readJson(path.join(dir, 'generation_config.json'), false),
    readJson(path.join(dir, 'config.json'), false),
  ]);
  return { tokenizerJson: tokenizerJson ?? {}, tokenizerConfig: tokenizerConfig ?? {}, generationConfig, modelConfig };
}

/** Loads dir/tokenizer.json (+ tokenizer_config.json, generation_config.json, config.json). */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  return tokenizerFromFiles(await readTokenizerFiles(dir), dir);
}

export function tokenizerFromFiles(files: TokenizerFiles, where = 'tokenizer'): Tokenizer {
  const { tokenizerJson: tj, tokenizerConfig: tc, generationConfig: gc, modelConfig: mc } = files;
  let lib: HfTokenizer;
  try {
    lib = new HfTokenizer(tj, tc);
  } catch (e) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [path.join(where, 'tokenizer.json'), (e as Error).message], { cause: e });
  }
  // The library's model.vocab is the id → token string table with added tokens written in.
  const vocab = (lib.model as unknown as { vocab: (string | undefined)[] }).vocab;
  const vocabSize = vocab.length;
  const added = (Array.isArray(tj['added_tokens']) ? tj['added_tokens'] : []) as AddedTokenJson[];
  const addedContents = new Set(added.map((a) => a.content));
  // Same set the library filters under skip_special_tokens: special added tokens + additional_special_tokens.
  const specialContents = new Set(added.filter((a) => a.special === true).map((a) => a.content));
  for (const s of Array.isArray(tc['additional_special_tokens']) ? tc['additional_special_tokens'] : []) {
    if (typeof s === 'string') specialContents.add(s);
  }
  const specialIds = new Set<number>();
  for (const s of specialContents) {
    const id = lib.token_to_id(s);
    if (id !== undefined) specialIds.add(id);
  }

  const suffix = (lib.model as unknown as { end_of_word_suffix?: string | null }).end_of_word_suffix;
  const plan: DecoderPlan = suffix ? { kind: 'generic' } : planDecoder(tj['decoder'] ?? null);

  const idOf = (piece: string): number | undefined => lib.token_to_id(piece);

  // bos: tokenizer_config decides when it names one (Qwen sets null on purpose); else the model configs.
  let bosTokenId: number | null = null;
  if ('bos_token' in tc) {
    const c = tokenContent(tc['bos_token']);
    bosTokenId = c === null ? null : (idOf(c) ?? null);
  } else {
    bosTokenId = idList(gc?.['bos_token_id'])[0] ?? idList(mc?.['bos_token_id'])[0] ?? null;
  }
  // eos: union of generation_config (what generate() stops on), config.json and tokenizer_config.
  const eos = new Set<number>([...idList(gc?.['eos_token_id']), ...idList(mc?.['eos_token_id'])]);
  const eosContent = tokenContent(tc['eos_token']);
  if (eosContent !== null) {
    const id = idOf(eosContent);
    if (id !== undefined) eos.add(id);
  }
  const eosTokenIds = Object.freeze([...eos].sort((a, b) => a - b));

  const byteCache: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(vocabSize);
  const utf8 = new TextEncoder();
  const inRange = (id: number): boolean => Number.isInteger(id) && id >= 0 && id < vocabSize && vocab[id] !== undefined;

  const decodeIds = (ids: readonly number[], skipSpecialTokens: boolean): string => {
    const ok = ids.filter(inRange);
    if (ok.length === 0) return '';
    // No clean_up_tokenization_spaces: it rewrites " ." → "." across token boundaries, which no
    // streaming decoder can reproduce, and current Llama/Qwen/Mistral configs turn it off anyway.
    return lib.decode(ok, { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  };

  const computeBytes = (id: number): Uint8Array => {
    const p = vocab[id];
    if (p === undefined) return new Uint8Array(0);
    if (plan.kind === 'byte-level') {
      if (addedContents.has(p)) return utf8.encode(p);
      return byteLevelBytes(p) ?? utf8.encode(p);
    }
    if (plan.kind === 'pieces') {
      let s = p;
      for (const m of plan.maps) s = m(s, false);
      const b = plan.byteFallback ? fallbackByte(s) : null;
      return b === null ? utf8.encode(s) : Uint8Array.of(b);
    }
    return utf8.encode(decodeIds([id], false));
  };

  const tokenBytes = (id: number): Uint8Array => {
    if (!inRange(id)) return new Uint8Array(0);
    let b = byteCache[id];
    if (b === undefined) byteCache[id] = b = computeBytes(id);
    return b;
  };

  const src: DecoderSource = {
    plan,
    piece: (id) => (inRange(id) ? vocab[id] : undefined),
    specialContents,
    addedContents,
    byteLevel: tokenBytes,
    decodeIds,
  };

  return {
    vocabSize,
    bosTokenId,
    eosTokenIds,
    specialIds,
    encode(text, opts) {
      return lib.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? false }).ids;
    },
    decode(ids, opts) {
      return decodeIds(ids, opts?.skipSpecialTokens ?? false);
    },
    tokenBytes,
    idOf,
    createDecoder(opts?: DecoderOptions): IncrementalDecoder {
      return createIncrementalDecoder(src, opts);
    },
  };
}
