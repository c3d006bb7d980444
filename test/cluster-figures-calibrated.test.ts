// Issue 22 item 3: the cluster's figures are computed in one place (src/cluster/figures.ts) and
// mean what they say. Measured = tokens ÷ the time they took over a window of tokens actually
// emitted (a burst of results arriving together must not read as 50× the speed); predicted = the
// serving plan's own measured stage and hop times once it served a stream alone; the page's
// "tokens/s" = tokens emitted, not the nodes' prompt positions. Structure only: no speed asserted.
import t from 'tap';
import { existsSync } from 'node:fs';
import { EMITTED_WINDOW_MS, MIN_SAMPLES, WINDOW_TOKENS, figuresOf, summarize, type TokenSample } from '../src/cluster/figures.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { gateway } from './helpers/cluster.ts';
import { natsMissing, spawnWorker, stories260k, until, withNats } from './helpers/nats.ts';

const sample = (at: number, gapMs: number, stageMs = [2, 3], hopMs = [0.5, 0.5]): TokenSample => ({ at, gapMs, stageMs, hopMs });

t.test('measured: tokens ÷ their time over the window, not 1 / the median gap', async (t) => {
  // Results that arrive in bursts (7 at once, then a 100 ms wait): 8 tokens in 107 ms.
  const s = [...Array.from({ length: 7 }, (_, i) => sample(1000 + i, 1)), sample(1100, 100)];
  const f = figuresOf(s, [], { tokS: 50, cycleMs: 20 }, 1200);
  t.equal(f.measuredTokS, Math.round((8000 / 107) * 1000) / 1000, `${f.measuredTokS} tok/s (a median gap would say 1000)`);
  t.equal(f.measuredTokens, 8);
  t.match(f.window, /last 8 of up to 64 tokens a stream decoded alone on this plan, within 30 s/);
});

t.test('the window: only the newest tokens, only recent ones; too few is "not measured"', async (t) => {
  const old = Array.from({ length: 20 }, (_, i) => sample(i, 1000));
  const fresh = Array.from({ length: WINDOW_TOKENS + 10 }, (_, i) => sample(100_000 + i * 10, 10));
  const f = figuresOf([...old, ...fresh], [], null, 100_000 + 2000);
  t.equal(f.measuredTokens, WINDOW_TOKENS);
  t.equal(f.measuredTokS, 100, 'the 1 s gaps of 100 s ago do not count');
  const few = figuresOf(fresh.slice(0, MIN_SAMPLES - 1), [], null, 100_000 + 100);
  t.equal(few.measuredTokS, null);
});

t.test('predicted: the serving plan\'s own stage + hop means; the planner\'s figure until then', async (t) => {
  const planner = { tokS: 200, cycleMs: 5 };
  const before = figuresOf([], [], planner, 0);
  t.equal(before.predictedBasis, 'planner');
  t.equal(before.predictedTokS, 200);
  t.equal(before.calibration, null);
  const s = Array.from({ length: 12 }, (_, i) => sample(i, 10, [4, 4 + (i % 3)], [1, 0.5]));
  const f = figuresOf(s, [], planner, 20);
  t.equal(f.predictedBasis, 'serving-steps');
  t.same(f.predictedStagesMs, [4, 5]);
  t.same(f.predictedHopsMs, [1, 0.5]);
  t.equal(f.predictedTokS, Math.round((1000 / 10.5) * 1000) / 1000);
  t.equal(f.plannerTokS, 200, 'the planner\'s figure stays visible beside it');
  t.equal(f.calibration, 2.1, 'serving cycle 10.5 ms ÷ the planner\'s 5 ms');
  t.match(summarize(f), /^one stream: predicted 95\.2 tok\/s \(from its measured stage and hop times\), measured 100 over the last 12/);
});

t.test('emitted: every stream\'s tokens over the last seconds', async (t) => {
  const at = Array.from({ length: 50 }, (_, i) => 20_000 + i * 100); // 50 tokens over 5 s
  const f = figuresOf([], [...Array.from({ length: 30 }, (_, i) => i), ...at], null, 25_000);
  t.equal(f.emittedTokS, 50 / (EMITTED_WINDOW_MS / 1000));
});

const skip = natsMissing() || (existsSync(stories260k) ? false : `${stories260k} is absent`);

t.test('a real 2-worker plan: one stream measured and its parts predicted, in the snapshot', { skip }, async (t) => {
  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, stories260k);
  for (const name of ['w1', 'w2']) spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', stories260k, '--threads', '1', '--speed', '10', '--memory', '1G']);
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 90_000, '2 stages live');
  t.equal(pipeline.clusterSnapshot().forecast?.predictedBasis, 'planner', 'before serving: the planner\'s figure');

  const prompt = Int32Array.of(1);
  const first = await pipeline.step({ seq: 'a', pos: 0, tokens: prompt, promptLen: 1, sampling: GREEDY, wantToken: true, wantLogits: false });
  const tok = first.token?.token ?? 0;
  const N = 40;
  let got = 0;
  for await (const o of pipeline.decode!({ seq: 'a', pos: 1, tokens: Int32Array.of(tok), promptLen: 1, sampling: GREEDY, wantToken: true, wantLogits: false }, N, [])) {
    if (o.token !== null) got++;
  }
  pipeline.free('a');
  t.equal(got, N);
  const fc = pipeline.clusterSnapshot().forecast;
  t.ok(fc !== null);
  if (fc === null) return;
  t.equal(fc.predictedBasis, 'serving-steps', 'after a stream alone: from the plan\'s own step times');
  t.equal(fc.predictedStagesMs.length, 2, 'one part per stage');
  t.equal(fc.predictedHopsMs.length, 2, 'and per hop of the cycle (last → first, first → last)');
  t.ok(fc.measuredTokS !== null && fc.measuredTokS > 0, `measured ${fc.measuredTokS}`);
  t.equal(fc.measuredTokens, N - 1, 'every chained gap of the stream (the first token answers the send)');
  t.ok(fc.emittedTokS > 0, `emitted ${fc.emittedTokS} tok/s`);
  t.equal(fc.summary, summarize({ ...fc }), 'the one sentence every surface prints');
  t.ok(fc.calibration !== null, 'a calibration for candidate plans');
});
