// Issue 20, Must show: a restarted gateway serves again within seconds. Workers announce the layer
// range they have loaded; a gateway with no plan yet adopts that layout when it is whole and fits,
// so nobody refetches or rebuilds — even when its planner, given the speeds announced now, would
// split the model elsewhere (a speed probe's noise re-split a 3B model across a restart: 62 s).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryHub } from '../src/bus/index.ts';
import { createClusterPipeline, modelCostsFromCheckpoint } from '../src/cluster/index.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { openCheckpoint } from '../src/model/index.ts';
import { WorkerNode } from '../src/worker/index.ts';
import { greedy, until } from './helpers/nats.ts';

t.test('a restarted gateway adopts the layout the workers hold, and they serve without reloading', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-held-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-qwen2', numLayers: 6, vocabSize: 600, tokenizer: false, seed: 5 });
  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 256 });
  const cfg = ckpt.config;
  ckpt.close();
  const hub = new MemoryHub();
  const gateway = () => createClusterPipeline({
    bus: hub.bus(), cluster: 'mem', cost, settleMs: 50, nodeTimeoutMs: 1500, objective: 'balanced',
    model: { name: 'tiny', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
  });
  const prompt = Int32Array.from({ length: 7 }, (_, i) => (i * 89 + 5) % 600);
  let first = gateway();
  const nodes = ['a', 'b'].map((name) => new WorkerNode({ bus: hub.bus(), cluster: 'mem', name, memory: 1e9, threads: 1, speed: 10, modelDir: model, cacheDir: dir }));
  let second: ReturnType<typeof gateway> | null = null;
  t.teardown(async () => { for (const n of nodes) await n.close(); await first.close(); await second?.close(); });
  for (const n of nodes) n.start();
  await until(() => first.coordinator.plan()?.live === true && first.coordinator.plan()?.stages.length === 2, 90_000, 'two live stages');
  const before = first.coordinator.plan()!.stages.map((s) => ({ node: s.node, start: s.start, end: s.end }));
  const want = await greedy(first, 's1', prompt, 8);
  const engines = nodes.map((n) => (n as unknown as { loaded: { engine: unknown } | null }).loaded?.engine);
  t.ok(engines.every((e) => e !== undefined), 'both workers hold a loaded stage');

  // The gateway goes away; meanwhile node b's announced speed changes (a new probe), so a fresh
  // planner would give b a different share.
  await first.close();
  const b = nodes[1] as unknown as { opts: { speed: number } };
  b.opts.speed = 40;
  second = gateway();
  first = second;
  await until(() => second!.coordinator.plan()?.live === true, 30_000, 'the restarted gateway serves');
  const after = second.coordinator.plan()!.stages.map((s) => ({ node: s.node, start: s.start, end: s.end }));
  t.same(after, before, `the same layout as before the restart: ${JSON.stringify(after)}`);
  t.ok(nodes.every((n, i) => (n as unknown as { loaded: { engine: unknown } | null }).loaded?.engine === engines[i]), 'no worker reloaded its stage');
  t.same(await greedy(second, 's2', prompt, 8), want, 'and the same greedy tokens');
});
