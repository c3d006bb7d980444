// Speculative decoding is exact on 2 and 3 in-process stages too: greedy and seeded sampling,
// unconstrained and under json_schema, prompt lookup and oracle drafts (helpers/speculate.ts).
import t from 'tap';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { generateCheckpoint } from '../src/model/index.ts';
import { identical } from './helpers/speculate.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-spec-split-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('identical with and without speculation on 2 and 3 stages', async (t) => {
  await generateCheckpoint(dir, { preset: 'tiny-llama', seed: 11 });
  await identical(t, dir, [2, 3]);
});
