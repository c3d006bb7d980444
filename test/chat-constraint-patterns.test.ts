// Issue 12 item 4 and issue 8 item 3 (patterns): 50 seeded samples per pattern, from
// random logits over the real Qwen3 vocabulary through the real constraint and sampler, all
// validate with ajv + ajv-formats (which run JS RegExp and ajv-formats' own checks: an
// independent judge of the automaton).
import t from 'tap';
import { fiftySamples, stats } from './helpers/constraint-sampling.ts';

const SCHEMAS: [string, object][] = [
  ['pattern', { type: 'string', pattern: '^[A-Z]{2}-\\d{3,5}$' }],
  ['pattern (unanchored) with minLength/maxLength', { type: 'string', pattern: 'ab?c', minLength: 4, maxLength: 9 }],
  ['pattern of issue 8', { type: 'string', pattern: '^([\\s\\S]*)*\\u0001$', minLength: 28, maxLength: 28 }],
];

for (const [name, schema] of SCHEMAS) {
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
