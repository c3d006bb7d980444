// The real stories260k checkpoint (skipped when ../shared/models is absent) through 3, 2 and 1
// worker processes: the greedy story is the same as in one process whatever the split. Workers
// leave cleanly (SIGTERM) between runs, which re-plans without waiting for a heartbeat timeout.
import t from 'tap';
import { existsSync } from 'node:fs';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { gateway } from './helpers/cluster.ts';
import { greedy, natsMissing, spawnWorker, stories260k, until, withNats } from './helpers/nats.ts';

const skip = natsMissing() || (existsSync(stories260k) ? false : `${stories260k} is absent`);

t.test('stories260k: greedy through 3, 2, 1 workers equals one process', { skip }, async (t) => {
  const prompt = Int32Array.of(1); // BOS: the model tells a story from nothing
  const N = 48;
  const local = await loadLocalModel(stories260k, { threads: 1 });
  const want = await greedy(local.pipeline, 'ref', prompt, N);
  await local.pipeline.close();
  t.ok(new Set(want).size > 10, 'a real story, not a loop of one token');

  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, stories260k, { settleMs: 1500 });
  const workers = ['w1', 'w2', 'w3'].map((name) => spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', stories260k, '--threads', '1', '--speed', '10', '--memory', '1G']));
  const live = (n: number) => (): boolean => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === n; };
  for (let n = 3; n >= 1; n--) {
    await until(live(n), 90_000, `${n} stage(s) live`);
    const stages = pipeline.coordinator.plan()?.stages ?? [];
    t.same(await greedy(pipeline, `s${n}`, prompt, N), want, `${n} worker(s) ${stages.map((s) => `[${s.start},${s.end})`).join(' ')}: same story`);
    if (n > 1) {
      // The last stage's worker leaves cleanly.
      const lastNode = stages[stages.length - 1]?.node ?? '';
      const w = workers[Number(lastNode.slice(1, 2)) - 1];
      w?.kill('SIGTERM');
      t.equal(await w?.exited, 0, `${lastNode} left with exit code 0`);
    }
  }
});
