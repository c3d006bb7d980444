// Issue 12 item 4 (formats): 50 seeded samples per format, from
// random logits over the real Qwen3 vocabulary through the real constraint and sampler, all
// validate with ajv + ajv-formats (which run JS RegExp and ajv-formats' own checks: an
// independent judge of the automaton).
import t from 'tap';
import { fiftySamples, stats } from './helpers/constraint-sampling.ts';

const SCHEMAS: [string, object][] = [
  ...['date-time', 'date', 'time', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid', 'uri'].map((f): [string, object] => [`format ${f}`, { type: 'string', format: f }]),
  ['format with minLength/maxLength', { type: 'string', format: 'email', minLength: 12, maxLength: 20 }],
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
