// Issue 22 item 1: devices come and go without stalling anyone.
// (a) A worker joins while one worker serves a stream: the plan serving is the baseline, as
//     measured; a newcomer whose probe says 10% faster is not predicted faster by the margin that
//     pays for a move (before, the planner moved the whole model to it and every stream replayed),
//     so nothing moves: the epoch stays, no step is refused, the text is the undisturbed run's,
//     and the newcomer's row says why it is idle.
// (b) A join that pays (the serving worker is 8× slower): the newcomer loads its layers while the
//     old plan keeps serving, and the switch comes only once it has loaded.
// Structure only; speeds are `hearth bench --cluster --join`'s.
import t from 'tap';
import type { ClusterPipeline } from '../src/cluster/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { startJoinCluster } from './helpers/join-cluster.ts';
import { natsMissing, until } from './helpers/nats.ts';

const skip = natsMissing();

/** One chained stream; every token, and whether a step was refused (a re-plan under it). */
async function stream(p: ClusterPipeline, seq: string, n: number): Promise<{ tokens: number[]; refused: string | null }> {
  const prompt = Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 500);
  const tokens: number[] = [];
  try {
    const first = await p.step({ seq, pos: 0, tokens: prompt, promptLen: prompt.length, sampling: GREEDY, wantToken: true, wantLogits: false });
    tokens.push(first.token?.token ?? -1);
    for await (const o of p.decode!({ seq, pos: prompt.length, tokens: Int32Array.of(tokens[0]!), promptLen: prompt.length, sampling: GREEDY, wantToken: true, wantLogits: false }, n - 1, [])) {
      tokens.push(o.token?.token ?? -1);
    }
    return { tokens, refused: null };
  } catch (e) {
    return { tokens, refused: (e as Error).message };
  } finally {
    p.free(seq);
  }
}

const servedBy = (p: ClusterPipeline, prefix: string) => (): boolean => {
  const plan = p.coordinator.plan();
  return plan !== null && plan.live && plan.stages.length === 1 && plan.stages[0]!.node.startsWith(prefix);
};

t.test('a worker 10% faster by its probe joins mid-stream: nothing moves, no step refused, same text, and it says why', { skip }, async (t) => {
  const { pipeline, worker } = await startJoinCluster(t, { hiddenSize: 128, headDim: 32, seed: 22 });
  worker('w1', ['--speed', '10']);
  await until(servedBy(pipeline, 'w1'), 90_000, 'w1 serving alone');
  // ~5 ms per hop: a stream long enough for the join to land inside it.
  pipeline.setHopDelay(5);
  const want = await stream(pipeline, 'ref', 48);
  t.equal(want.refused, null);
  // Serve a stream alone so the plan has measured figures (the baseline a move must beat).
  t.equal((await stream(pipeline, 'warm', 48)).refused, null);
  const epoch = pipeline.epoch();
  worker('w2', ['--speed', '11']);
  const joined = (): boolean => pipeline.clusterSnapshot().nodes.some((n) => n.name === 'w2' && n.state === 'idle');
  const runs: { tokens: number[]; refused: string | null }[] = [];
  // Streams back to back from before w2 announces until well after its join settled.
  for (let k = 0, after = 0; k < 200 && after < 3; k++) {
    runs.push(await stream(pipeline, `s${k}`, 48));
    if (joined()) after++;
  }
  t.ok(joined(), 'w2 joined and is idle');
  t.equal(pipeline.epoch(), epoch, 'the plan serving stayed (no new epoch)');
  t.same(runs.filter((r) => r.refused !== null).map((r) => r.refused), [], 'no step refused');
  t.ok(runs.every((r) => JSON.stringify(r.tokens) === JSON.stringify(want.tokens)), `all ${runs.length} streams: the undisturbed text`);
  const w2 = pipeline.clusterSnapshot().nodes.find((n) => n.name === 'w2');
  t.match(w2?.idleReason ?? '', /^node w2 left out: keeping the plan serving: the new plan predicts [\d.]+ tok\/s for one stream, the plan serving measures [\d.]+; a move must predict 15% faster to pay for itself$/);
});

t.test('a join that pays: the newcomer loads while the old plan serves; the switch waits for it', { skip }, async (t) => {
  const { pipeline, worker, logs } = await startJoinCluster(t, { hiddenSize: 128, headDim: 32, seed: 22 });
  worker('slow', ['--slowdown', '8']);
  await until(servedBy(pipeline, 'slow'), 90_000, 'the slow worker serving alone');
  t.equal((await stream(pipeline, 'warm', 24)).refused, null);
  const epoch = pipeline.epoch();
  worker('fast');
  const epochs: number[] = [];
  const loadingSeen: boolean[] = [];
  await until(() => {
    epochs.push(pipeline.epoch());
    const fast = pipeline.clusterSnapshot().nodes.find((n) => n.name === 'fast');
    if (fast?.state === 'loading' && pipeline.epoch() === epoch) loadingSeen.push(pipeline.coordinator.plan()?.live === true);
    return servedBy(pipeline, 'fast')();
  }, 90_000, 'the fast worker serving');
  const prep = logs.findIndex((l) => l.startsWith('loading a new plan while the plan serving keeps serving'));
  const sw = logs.findIndex((l) => l.startsWith('new plan: 1 stage(s), its new nodes loaded while the old plan served;'));
  t.ok(prep >= 0 && sw > prep, 'prepared first, switched after');
  t.ok(loadingSeen.every((live) => live), `while the newcomer loaded, the old plan stayed live (${loadingSeen.length} looks)`);
  t.same([...new Set(epochs)].filter((e) => e !== epoch).length, 1, 'one new epoch, straight to the plan the newcomer loaded');
  t.equal(pipeline.clusterSnapshot().nodes.find((n) => n.name === 'fast')?.state, 'ready', 'the newcomer shows as serving, not still loading');
  t.equal((await stream(pipeline, 'after', 24)).refused, null, 'the new plan serves');
});
