import { HearthError } from '../errors/index.ts';
import type { Tokenizer } from '../tokenizer/types.ts';

// Fill-in-the-middle for /v1/completions with `suffix`: the prompt is the text before the cursor,
// the suffix the text after it, and the model writes the middle. Code models learn this with three
// special tokens; the prompt is assembled from token ids (prefix and suffix text are tokenized on
// their own, so neither can run into a FIM token). Layouts, from each model's own docs:
//   Qwen2.5-Coder / Qwen3   <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>   (PSM)
//   StarCoder / StarCoder2  <fim_prefix>P<fim_suffix>S<fim_middle>          (PSM)
//   DeepSeek-Coder          <｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>          (PSM)
//   CodeLlama               ▁<PRE> P ▁<SUF>S ▁<MID>                          (PSM)
//   Codestral (Mistral)     [SUFFIX]S[PREFIX]P                               (SPM, mistral-common's encode_fim)

interface FimFamily {
  readonly name: string;
  readonly prefix: string;
  readonly suffix: string;
  /** null: the layout ends with the prefix (SPM), no middle token. */
  readonly middle: string | null;
  readonly order: 'psm' | 'spm';
  /** More tokens that end a middle (file/repo separators, padding) when the vocabulary has them. */
  readonly stops: readonly string[];
}

const FAMILIES: readonly FimFamily[] = [
  { name: 'Qwen', prefix: '<|fim_prefix|>', suffix: '<|fim_suffix|>', middle: '<|fim_middle|>', order: 'psm', stops: ['<|fim_pad|>', '<|file_sep|>', '<|repo_name|>', '<|endoftext|>', '<|im_end|>'] },
  { name: 'StarCoder', prefix: '<fim_prefix>', suffix: '<fim_suffix>', middle: '<fim_middle>', order: 'psm', stops: ['<fim_pad>', '<file_sep>', '<|endoftext|>'] },
  { name: 'DeepSeek-Coder', prefix: '<｜fim▁begin｜>', suffix: '<｜fim▁hole｜>', middle: '<｜fim▁end｜>', order: 'psm', stops: ['<|EOT|>'] },
  { name: 'CodeLlama', prefix: '▁<PRE>', suffix: '▁<SUF>', middle: '▁<MID>', order: 'psm', stops: ['▁<EOT>'] },
  { name: 'Codestral', prefix: '[PREFIX]', suffix: '[SUFFIX]', middle: null, order: 'spm', stops: [] },
];

export interface FimTokens {
  readonly family: string;
  readonly prefix: number;
  readonly suffix: number;
  readonly middle: number | null;
  readonly order: 'psm' | 'spm';
  readonly stops: readonly number[];
}

const cache = new WeakMap<Tokenizer, FimTokens | null>();

/** The tokenizer's FIM tokens (the first family whose tokens are all single tokens), or null. */
export function fimTokens(tok: Tokenizer): FimTokens | null {
  if (cache.has(tok)) return cache.get(tok)!;
  let found: FimTokens | null = null;
  for (const f of FAMILIES) {
    const prefix = tok.idOf(f.prefix);
    const suffix = tok.idOf(f.suffix);
    const middle = f.middle === null ? null : tok.idOf(f.middle);
    if (prefix === undefined || suffix === undefined || middle === undefined) continue;
    const stops = f.stops.map((s) => tok.idOf(s)).filter((id): id is number => id !== undefined);
    found = { family: f.name, prefix, suffix, middle, order: f.order, stops };
    break;
  }
  cache.set(tok, found);
  return found;
}

/** A 400 naming what was looked for, when the model has no FIM tokens. */
export function noFim(modelId: string): HearthError {
  const names = FAMILIES.map((f) => `${f.prefix}${f.middle === null ? '' : '…'}`).join(', ');
  return new HearthError('HEARTH_ERR_FIM_UNSUPPORTED', [names, modelId], { param: 'suffix' });
}

/**
 * The FIM prompt as token ids. `prefix` is the prompt's own ids (BOS included when the tokenizer
 * adds one: the layout follows it).
 */
export function fimPrompt(fim: FimTokens, tok: Tokenizer, prefixText: string, suffixText: string): Int32Array {
  const bos = tok.encode('', { addSpecialTokens: true });
  const p = tok.encode(prefixText, { addSpecialTokens: false });
  const s = tok.encode(suffixText, { addSpecialTokens: false });
  const ids = fim.order === 'psm' ? [...bos, fim.prefix, ...p, fim.suffix, ...s, ...(fim.middle === null ? [] : [fim.middle])] : [...bos, fim.suffix, ...s, fim.prefix, ...p];
  return Int32Array.from(ids);
}
