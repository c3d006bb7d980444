// The real pretrained stories260k checkpoint (tied embeddings) split over two "workers" whose
// weights come only from the gateway: their 2-stage pipeline must produce the same logits and
// the same greedy tokens as the whole original folder in one stage.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Fastify from 'fastify';
import t from 'tap';

import { openCheckpoint } from '../src/model/index.ts';
import { createShardEngine, type ShardEngine } from '../src/runtime/index.ts';
import { WeightsGrants, ensureStageWeights, weightsRoutes } from '../src/weights/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STORIES = path.resolve(repoRoot, '../shared/models/stories260k');

t.test('stories260k: fetched stages run exactly like the original', { skip: !existsSync(path.join(STORIES, 'config.json')) && 'stories260k absent' }, async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'hearth-weights-stories-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const app = Fastify();
  const grants = new WeightsGrants();
  await app.register(weightsRoutes, { modelDir: STORIES, modelId: 'stories260k', grants });
  const gatewayUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());

  const numLayers = 5;
  const split: [number, number][] = [[0, 2], [2, 5]];
  const dirs = await Promise.all(split.map(([start, end]) =>
    ensureStageWeights({ gatewayUrl, token: grants.grant(`n${start}`, start, end), model: 'stories260k', start, end, numLayers, cacheDir: path.join(tmp, 'cache') })));

  // Tied embeddings: the last stage carries embed_tokens (its lm_head), the first carries it as the embedding.
  const orig = openCheckpoint(STORIES);
  t.teardown(() => orig.close());
  for (const [i, [start, end]] of split.entries()) {
    const ck = openCheckpoint(dirs[i] as string, { range: [start, end] });
    for (const n of orig.tensorsForRange(start, end)) t.same(ck.read(n), orig.read(n), `stage ${start}-${end}: ${n}`);
    ck.close();
  }

  const spec = { quant: 'none' as const, threads: 1, provider: 'cpu' as const };
  const engines: ShardEngine[] = [];
  t.teardown(async () => { for (const e of engines) await e.close(); });
  const whole = await createShardEngine(STORIES, { start: 0, end: numLayers, ...spec });
  engines.push(whole);
  const stages = await Promise.all(split.map(([start, end], i) => createShardEngine(dirs[i] as string, { start, end, ...spec })));
  engines.push(...stages);

  const runWhole = async (tokens: Int32Array, pos: number): Promise<Float32Array> =>
    (await whole.run([{ seq: 'a', pos, n: tokens.length, tokens }]))[0]?.logits as Float32Array;
  const runSplit = async (tokens: Int32Array, pos: number): Promise<Float32Array> => {
    const h = (await (stages[0] as ShardEngine).run([{ seq: 'b', pos, n: tokens.length, tokens }]))[0]?.hidden as Float32Array;
    return (await (stages[1] as ShardEngine).run([{ seq: 'b', pos, n: tokens.length, tokens, hidden: h }]))[0]?.logits as Float32Array;
  };
  const argmax = (x: Float32Array): number => x.reduce((best, v, i, a) => (v > (a[best] as number) ? i : best), 0);

  let prompt = Int32Array.from([1, 403, 407, 261, 378, 429, 300]);
  let pos = 0;
  let maxDiff = 0;
  let same = true;
  for (let step = 0; step < 12; step++) {
    const a = await runWhole(prompt, pos);
    const b = await runSplit(prompt, pos);
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs((a[i] as number) - (b[i] as number)));
    same &&= argmax(a) === argmax(b);
    pos += prompt.length;
    prompt = Int32Array.from([argmax(a)]);
  }
  t.ok(maxDiff <= 1e-4, `logits max |diff| ${maxDiff.toExponential(2)} ≤ 1e-4 over 12 steps`);
  t.ok(same, 'greedy tokens identical');
});
