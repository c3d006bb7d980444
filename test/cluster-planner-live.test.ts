// The planner on real workers (issue 10): a worker made 8× slower (the --slowdown hook, which its
// speed probe sees too) serves alone; a fast worker joins and the planner moves the model to it,
// leaves the slow one out and says why (with both predictions), and /v1/cluster's forecast shows
// a predicted and a measured tok/s side by side. Whether the speeds rose is measured by
// `hearth bench --planner-live` (src/cluster/bench-planner-live.ts), not asserted here: a test
// on measured speeds fails whenever the machine is busy (issue 19 item 10).
import t from 'tap';
import { GREEDY } from '../src/sampling/types.ts';
import { createScheduler, type Scheduler } from '../src/scheduler/index.ts';
import { startJoinCluster } from './helpers/join-cluster.ts';
import { natsMissing, until } from './helpers/nats.ts';

const skip = natsMissing();

async function serve(s: Scheduler, tag: string, n: number): Promise<void> {
  for (let k = 0; k < n; k++) {
    const prompt = Int32Array.from({ length: 6 }, (_, i) => (i * 31 + k * 7 + 1) % 500);
    for await (const ev of s.generate({ id: `${tag}${k}`, prompt, maxTokens: 16, sampling: GREEDY, stopTokens: [] })) void ev;
  }
}

t.test('a slow worker is left out once a fast one joins, and says why; the forecast shows predicted and measured tok/s', { skip }, async (t) => {
  const { pipeline, worker, logs: logLines } = await startJoinCluster(t, { hiddenSize: 256, headDim: 64, seed: 4 });
  const sched = createScheduler(pipeline, { prefixCache: 0 });
  // No --speed: each worker runs its speed probe (the slow one's divided by its slowdown).
  const servedBy = (prefix: string) => (): boolean => {
    const p = pipeline.coordinator.plan();
    return p !== null && p.live && p.stages.length === 1 && p.stages[0]!.node.startsWith(prefix);
  };

  worker('slow', ['--slowdown', '8']);
  await until(servedBy('slow'), 90_000, 'the slow worker serving alone');
  await serve(sched, 'a', 3);
  // The heartbeat after serving carries the measured step time.
  await until(() => pipeline.clusterSnapshot().forecast?.stages[0]?.measuredMs != null, 5000, 'a measured stage time');
  const before = pipeline.clusterSnapshot().forecast;
  t.ok(before !== null && before.measuredTokS !== null, `slow alone: predicted ${before?.predictedTokS} tok/s, measured ${before?.measuredTokS}`);
  t.ok(before !== null && Number.isFinite(before.predictedTokS) && before.predictedTokS > 0, 'the forecast has a prediction');

  worker('fast');
  await until(servedBy('fast'), 90_000, 'the fast worker serving alone');
  const snap = pipeline.clusterSnapshot();
  const slow = snap.nodes.find((n) => n.name === 'slow');
  t.equal(slow?.state, 'idle', 'the slow worker is idle');
  t.equal(slow?.range, null);
  const re = /^node slow left out: the plan with it predicts ([\d.]+) tok\/s, without it ([\d.]+)/;
  t.match(slow?.idleReason ?? '', re, `/v1/cluster says why: ${slow?.idleReason}`);
  const [, withIt, without] = re.exec(slow?.idleReason ?? '') ?? [];
  t.ok(Number(withIt) < Number(without), `with it ${withIt} < without it ${without}`);
  t.ok(logLines.some((l) => l.startsWith('node slow left out: the plan with it predicts')), 'the log says it too');
  t.ok(logLines.some((l) => /^new plan: 1 stage\(s\), predicts [\d.]+ tok\/s/.test(l)), 'the log gives the predicted tok/s of the new plan');

  await serve(sched, 'b', 3);
  await until(() => pipeline.clusterSnapshot().forecast?.measuredTokS != null, 5000, 'a measured tok/s on the new plan');
  const after = pipeline.clusterSnapshot().forecast;
  // Shown, not compared (see the top of this file).
  t.comment(`predicted ${before?.predictedTokS} → ${after?.predictedTokS} tok/s, measured ${before?.measuredTokS} → ${after?.measuredTokS}`);
  t.ok(after !== null && Number.isFinite(after.predictedTokS) && after.predictedTokS > 0 && after.measuredTokS !== null, 'the new plan has a prediction and a measured tok/s');
  t.equal(pipeline.clusterSnapshot().forecast?.stages[0]?.node.startsWith('fast'), true, "the forecast is the new plan's");
  t.ok(snap.nodes.every((n) => n.msPerLayer !== null && n.linkMs !== null), 'every node has ms per layer and a probed link');
});
