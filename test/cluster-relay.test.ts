// Greedy tokens through 1, 2 and 3 real worker processes over a real nats-server equal the
// same model in one process; each join makes a new plan that the next request uses; a prompt
// whose activations exceed NATS's 1 MB max_payload goes through; a worker without the token is
// refused.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { gateway } from './helpers/cluster.ts';
import { greedy, natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

t.test('greedy through 1, 2, 3 workers equals one process; joins re-plan', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-relay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  // hidden 256 → 1 KB of activations per position: a 1100-token prompt is > 1 MB on the wire.
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 512, numLayers: 6, vocabSize: 1000, tokenizer: false, seed: 5 });

  const prompt = Int32Array.from({ length: 12 }, (_, i) => (i * 37 + 11) % 1000);
  const long = Int32Array.from({ length: 1100 }, (_, i) => (i * 53 + 7) % 1000);
  const N = 16;
  const local = await loadLocalModel(model, { threads: 1 });
  const want = await greedy(local.pipeline, 'ref', prompt, N);
  const wantLong = await greedy(local.pipeline, 'ref-long', long, 4);
  t.ok(new Set(want).size > 3, 'the reference output is not degenerate');
  await local.pipeline.close();

  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, model);
  const args = (name: string): string[] => ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G'];

  const stagesLive = (n: number) => (): boolean => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === n; };
  for (const [i, name] of ['w1', 'w2', 'w3'].entries()) {
    spawnWorker(t, args(name));
    await until(stagesLive(i + 1), 90_000, `a live plan with ${i + 1} stage(s)`);
    const plan = pipeline.coordinator.plan();
    t.equal(plan?.stages.length, i + 1, `epoch ${plan?.epoch}: ${JSON.stringify(plan?.stages)}`);
    const got = await greedy(pipeline, `s${i}`, prompt, N);
    t.same(got, want, `${i + 1} worker(s): same greedy tokens as one process`);
  }
  const snap = pipeline.clusterSnapshot();
  t.equal(snap.nodes.filter((n) => n.state === 'ready').length, 3, 'snapshot shows 3 ready nodes');
  t.same(snap.nodes.map((n) => n.range), [[0, 2], [2, 4], [4, 6]], 'equal nodes, even split');

  // 1100 positions × 256 × 4 B = 1.1 MB per hop: chunked, not refused.
  const gotLong = await greedy(pipeline, 'long', long, 4);
  t.same(gotLong, wantLong, 'a > 1 MB prefill goes through, same tokens');
  t.ok(pipeline.hops.count() > 0 && pipeline.hops.quantile(0.5) >= 0, `hop p50 ${pipeline.hops.quantile(0.5).toFixed(2)} ms`);

  // The nats-server restarts (same port): gateway and workers reconnect, the plan comes back.
  await nats.stop();
  await until(() => !stagesLive(3)(), 5000, 'the gateway notices the server is gone');
  const again = await startNatsServer({ token: nats.token, port: nats.port });
  t.teardown(() => again.stop());
  await until(stagesLive(3), 90_000, 'a live 3-stage plan after the restart');
  t.same(await greedy(pipeline, 'after-restart', prompt, N), want, 'same tokens after a nats-server restart');
});

t.test('a worker without the token is refused and exits non-zero', { skip }, async (t) => {
  const nats = await withNats(t);
  const w = spawnWorker(t, ['--join', nats.url, '--token', 'not-the-token', '--name', 'intruder', '--speed', '1']);
  const code = await w.exited;
  t.not(code, 0, `exit code ${String(code)}`);
  t.match(w.stderr(), /refused.*rejected the credential/);
});
