// Faults with real worker processes: a worker SIGKILLed mid-generation → the scheduler replays
// on the new plan and the text is identical to the uninterrupted run; when the survivors cannot
// hold the model requests fail fast with a clear 503 (HEARTH_ERR_NO_PLAN) and succeed again once
// a node joins.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { modelCostsFromCheckpoint, stageBytes } from '../src/cluster/index.ts';
import { isHearthError } from '../src/errors/index.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { openCheckpoint } from '../src/model/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { createScheduler } from '../src/scheduler/index.ts';
import type { Generator } from '../src/scheduler/types.ts';
import { gateway } from './helpers/cluster.ts';
import { natsMissing, spawnWorker, until, withNats, type WorkerProc } from './helpers/nats.ts';

const skip = natsMissing();

async function generate(g: Generator, id: string, prompt: Int32Array, maxTokens: number, onToken?: (i: number) => void): Promise<number[]> {
  const out: number[] = [];
  for await (const ev of g.generate({ id, prompt, maxTokens, sampling: GREEDY, stopTokens: [] })) {
    if (ev.type === 'token') { out.push(ev.token.token); onToken?.(ev.index); }
  }
  return out;
}

t.test('kill -9 mid-generation: identical output; too few survivors: 503, then a join serves again', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-faults-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 128, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 256, numLayers: 6, vocabSize: 1000, tokenizer: false, seed: 9 });
  // Each node can hold any 3 layers (with the embedding or the head) but not 4: two nodes are
  // needed, three share the work.
  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 2048 });
  ckpt.close();
  const memory = Math.ceil(Math.max(stageBytes(cost, 0, 3), stageBytes(cost, 3, 6)) + 0.1 * (cost.layerBytes[0] ?? 0));
  t.ok(memory < stageBytes(cost, 1, 5), 'no node holds four layers');

  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, model);
  const sched = createScheduler(pipeline, { readyTimeoutMs: 30_000, prefixCache: 0 });
  const start = (name: string): WorkerProc => spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', model, '--threads', '1', '--speed', '10', '--memory', String(memory)]);
  const live = (n: number) => (): boolean => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === n; };

  const w1 = start('w1');
  const w2 = start('w2');
  const w3 = start('w3');
  await until(live(3), 90_000, 'three stages live');
  const prompt = Int32Array.from({ length: 9 }, (_, i) => (i * 101 + 3) % 1000);
  const N = 40;
  const want = await generate(sched, 'clean', prompt, N);
  t.equal(want.length, N);
  t.ok(new Set(want).size > 3, 'not a degenerate sequence');

  // Kill the middle stage once 8 tokens are out; the sequence must continue exactly.
  const epochBefore = pipeline.epoch();
  let killedAt = -1;
  const got = await generate(sched, 'killed', prompt, N, (i) => { if (i === 7) { killedAt = i; w2.kill('SIGKILL'); } });
  t.equal(killedAt, 7, 'the worker was killed mid-generation');
  t.same(got, want, 'same tokens as the uninterrupted run: none lost, none repeated');
  t.ok(pipeline.epoch() > epochBefore, `re-planned (epoch ${epochBefore} → ${pipeline.epoch()})`);
  const plan = pipeline.coordinator.plan();
  t.same(plan?.stages.map((s) => s.node.slice(0, 2)), ['w1', 'w3'], 'the survivors hold the model');
  const lost = pipeline.clusterSnapshot().nodes.find((n) => n.id.startsWith('w2'));
  t.equal(lost?.state, 'lost', 'the snapshot shows the lost node');

  // Now one survivor alone cannot hold it: a clear 503, quickly.
  w3.kill('SIGKILL');
  await until(() => pipeline.coordinator.noPlanReason() !== null, 5000, 'no plan');
  await new Promise((r) => setTimeout(r, 3200)); // the no-plan grace
  const t0 = Date.now();
  try {
    await generate(sched, 'nope', prompt, 4);
    t.fail('served without a plan');
  } catch (e) {
    t.ok(isHearthError(e, 'HEARTH_ERR_NO_PLAN'), (e as Error).message);
    t.equal((e as { status?: number }).status, 503);
    t.match((e as Error).message, /[\d.]+ [MG]B missing: node w1 \(w1-/);
    t.ok(Date.now() - t0 < 2000, 'failed fast, not after the ready timeout');
  }
  // A node joins: requests succeed again, same text.
  start('w4');
  await until(live(2), 90_000, 'two stages live again');
  t.same(await generate(sched, 'again', prompt, N), want, 'served again after the join, same tokens');
  void w1;
});
