// Issue 12 item 4: every JSON Schema keyword of OpenAI's structured outputs is enforced while
// decoding. For each keyword, 50 seeded samples from random logits over the real Qwen3 vocabulary
// (151k byte-level BPE tokens), through the real constraint and sampler, must all validate with
// ajv (an independent validator); a keyword hearth cannot enforce is refused up front, naming it.
// Patterns and formats: chat-constraint-formats.test.ts.
import t from 'tap';
import { createConstraint } from '../src/chat/constraint/index.ts';
import { fiftySamples, stats, vocab } from './helpers/constraint-sampling.ts';

const KEYWORDS: [string, object][] = [
  ['integer minimum/maximum', { type: 'integer', minimum: -20, maximum: 45 }],
  ['integer exclusiveMinimum/exclusiveMaximum', { type: 'integer', exclusiveMinimum: 3, exclusiveMaximum: 9 }],
  ['integer multipleOf', { type: 'integer', multipleOf: 7, minimum: -100, maximum: 1000 }],
  ['integer minimum only', { type: 'integer', minimum: 1_000_000 }],
  ['number minimum/maximum', { type: 'number', minimum: -2.5, maximum: 3.75 }],
  ['number exclusiveMinimum/exclusiveMaximum', { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 0.01 }],
  ['number maximum 0.1 (a decimal the double overshoots)', { type: 'number', minimum: 0.1, maximum: 0.1 }],
  ['minItems/maxItems', { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 4 }],
  ['minLength/maxLength', { type: 'string', minLength: 3, maxLength: 6 }],
  ['enum', { enum: ['red', 'green', 3, null, { a: 1 }] }],
  ['const', { const: { a: [1, 'x'], b: null } }],
  ['anyOf', { anyOf: [{ type: 'integer', minimum: 100, maximum: 200 }, { type: 'string', pattern: '^x+$', maxLength: 5 }, { type: 'null' }] }],
  ['$defs/$ref recursion', { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v', 'kids'], additionalProperties: false } } }],
  ['additionalProperties false', { type: 'object', properties: { a: { type: 'integer', multipleOf: 5 }, b: { type: 'string', format: 'date' } }, required: ['a', 'b'], additionalProperties: false }],
];

for (const [name, schema] of KEYWORDS) {
  t.test(`${name}: 50 seeded samples validate`, (t) => {
    const r = fiftySamples(name, schema);
    t.equal(r.bad, '', 'every sample parses and validates');
    t.equal(r.unended, 0, 'every sample ended within the token budget');
    t.comment(`${r.seen.size} distinct outputs, e.g. ${[...r.seen].slice(0, 3).join('  ')}`);
    t.end();
  });
}

t.test('closing never missed a shortest path', (t) => {
  t.equal(stats.misses, 0);
  t.end();
});

t.test('keywords hearth cannot enforce are refused up front, naming the keyword', (t) => {
  const refused: [string, object][] = [
    ['not', { not: { type: 'string' } }],
    ['if', { type: 'object', if: { required: ['a'] }, then: { required: ['b'] } }],
    ['patternProperties', { type: 'object', patternProperties: { '^x': { type: 'integer' } } }],
    ['propertyNames', { type: 'object', propertyNames: { maxLength: 3 } }],
    ['minProperties', { type: 'object', minProperties: 2 }],
    ['maxProperties', { type: 'object', properties: { a: { type: 'integer' } }, maxProperties: 1 }],
    ['dependentRequired', { type: 'object', dependentRequired: { a: ['b'] } }],
    ['uniqueItems', { type: 'array', items: { type: 'integer' }, uniqueItems: true }],
    ['contains', { type: 'array', contains: { const: 1 } }],
    ['prefixItems', { type: 'array', prefixItems: [{ type: 'integer' }] }],
    ['unevaluatedProperties', { type: 'object', unevaluatedProperties: false }],
    ['multipleOf', { type: 'number', multipleOf: 0.1 }],
    ['format', { type: 'string', format: 'credit-card' }],
    ['pattern', { type: 'string', pattern: '(?=x)' }],
    ['minimum', { type: 'integer', minimum: 5, maximum: 4 }],
    ['items', { type: 'array', items: [{ type: 'integer' }] }],
  ];
  for (const [kw, schema] of refused) {
    // Nested too: the keyword deep inside a property is found.
    for (const s of [schema, { type: 'object', properties: { x: schema }, required: ['x'] }]) {
      let err: unknown;
      try { createConstraint({ kind: 'json_schema', schema: s }, vocab); } catch (e) { err = e; }
      t.match(err, { code: 'HEARTH_ERR_INVALID_REQUEST' }, `${kw}: refused`);
      t.match((err as Error | undefined)?.message ?? '', kw, `${kw}: the message names it (${(err as Error | undefined)?.message ?? ''})`);
    }
  }
  // Spellings that constrain nothing stay accepted.
  for (const s of [{ type: 'array', uniqueItems: false }, { type: 'object', minProperties: 0 }, { type: 'string', title: 't', description: 'd', examples: ['x'], default: 'x', $comment: 'c' }]) {
    t.doesNotThrow(() => createConstraint({ kind: 'json_schema', schema: s }, vocab), JSON.stringify(s));
  }
  t.end();
});
