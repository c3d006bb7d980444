// Workers started without the model fetch only their own layers from the gateway (byte ranges of
// the safetensors files over authenticated HTTP), then serve the same tokens as one process.
import t from 'tap';
import Fastify from 'fastify';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NatsBus } from '../src/bus/index.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { createClusterPipeline, modelCostsFromCheckpoint } from '../src/cluster/index.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { openCheckpoint } from '../src/model/index.ts';
import { WeightsGrants, weightsRoutes } from '../src/weights/index.ts';
import { greedy, natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? bytesUnder(p) : statSync(p).size;
  }
  return n;
}

t.test('workers without the model fetch only their layers from the gateway', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-wfetch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 128, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 256, numLayers: 6, vocabSize: 1000, tokenizer: false, seed: 4 });
  const prompt = Int32Array.from({ length: 8 }, (_, i) => (i * 71 + 2) % 1000);
  const local = await loadLocalModel(model, { threads: 1 });
  const want = await greedy(local.pipeline, 'ref', prompt, 12);
  await local.pipeline.close();

  const nats = await withNats(t);
  const app = Fastify();
  const grants = new WeightsGrants();
  await app.register(weightsRoutes, { modelDir: model, modelId: 'tiny', grants });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const addr = app.server.address();
  const gatewayUrl = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;

  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 1024 });
  const cfg = ckpt.config;
  ckpt.close();
  const bus = await NatsBus.connect({ servers: nats.url, token: nats.token, name: 'gw' });
  const pipeline = createClusterPipeline({
    bus, cost, cluster: 'wf', settleMs: 1500, objective: 'balanced',
    model: { name: 'tiny', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl, weightsToken: '' },
    weightsGrants: grants,
  });
  t.teardown(async () => { await pipeline.close(); await bus.close(); });
  const caches = ['c1', 'c2'].map((c) => path.join(dir, c));
  caches.forEach((cache, i) => spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'wf', '--name', `w${i + 1}`, '--cache', cache, '--threads', '1', '--speed', '10', '--memory', '1G']));
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 90_000, 'two live stages');
  t.same(await greedy(pipeline, 's', prompt, 12), want, 'fetched stages serve the same tokens');
  // Issue 19: the cluster token alone reads no weights; each worker fetched with its own grant.
  const noGrant = await fetch(`${gatewayUrl}/internal/weights/tiny/manifest`, { headers: { authorization: `Bearer ${nats.token}` } });
  t.equal(noGrant.status, 401, 'the cluster token is not a weights grant');
  const full = bytesUnder(model);
  for (const cache of caches) {
    const held = bytesUnder(cache);
    t.ok(held > 0 && held < 0.8 * full, `${path.basename(cache)} holds ${held} bytes of the ${full}-byte model`);
  }
});
