// The planner's choice (issue 10): predicted decode tok/s per candidate plan from each node's ms
// per layer and link, the fastest that fits — leaving a slow or far node out and saying why —
// and never a plan predicted slower than the best single device.
import t from 'tap';
import { choosePlan, msPerMbOf, predictPlan, DEFAULT_MS_PER_MB_AT_1_GFLOPS, PROBE_TO_STAGE, STAGE_OVERHEAD_MS, type NodePerf } from '../src/cluster/plan-choice.ts';
import { tryPlan, type ModelCost, type PlanNode } from '../src/cluster/planner.ts';

const MB = 1e6;
// The 0.5B int4 shape: 24 layers of ~9.3 MB, a tied 85 MB head.
const m: ModelCost = { numLayers: 24, layerBytes: new Array<number>(24).fill(9.3 * MB), kvBytesPerLayer: 1 * MB, firstBytes: 85 * MB, lastBytes: 85 * MB, headCost: 85 * MB, stageOverheadBytes: 96 * MB };
const node = (id: string, speed: number, memory = 10e9): PlanNode => ({ id, name: id, memory, speed });
const none = new Map<string, NodePerf>();
const perf = (o: Record<string, Partial<NodePerf>>): Map<string, NodePerf> => new Map(Object.entries(o).map(([k, v]) => [k, { msPerMb: v.msPerMb ?? null, legMs: v.legMs ?? null, probeMsPerMb: v.probeMsPerMb ?? null }]));
const stagesOf = (c: ReturnType<typeof choosePlan>): string[] => c?.plan.stages.map((s) => `${s.node}[${s.start},${s.end})`) ?? [];

t.test('the prediction: stage compute + two hops per token; one stage makes no hop', async (t) => {
  const one = tryPlan(m, [node('a', 1)]);
  t.ok(one !== null);
  const p1 = predictPlan(m, one!, [node('a', 1)], none);
  const costMb = (24 * 9.3 * MB + 85 * MB) / MB;
  t.ok(Math.abs(p1.cycleMs - (STAGE_OVERHEAD_MS + costMb * DEFAULT_MS_PER_MB_AT_1_GFLOPS)) < 1e-9, `one stage: ${p1.cycleMs.toFixed(2)} ms per token`);
  t.equal(p1.hopsMs, 0);
  const two = tryPlan(m, [node('a', 1), node('b', 1)]);
  const p2 = predictPlan(m, two!, [node('a', 1), node('b', 1)], perf({ a: { legMs: 1 }, b: { legMs: 2 } }));
  t.equal(p2.hopsMs, 6, 'a→b and b→a, each leg(a) + leg(b)');
  t.ok(p2.capacityTokS > p1.capacityTokS * 1.8, 'two stages: nearly twice the capacity');
});

t.test('equal nodes on a fast link share the model (capacity, within 10% of one device)', async (t) => {
  const c = choosePlan(m, [node('a', 1), node('b', 1)], perf({ a: { legMs: 0.3 }, b: { legMs: 0.3 } }));
  t.equal(c?.plan.stages.length, 2, stagesOf(c).join(' '));
  t.same(c?.idle, []);
});

t.test('a slow node is left out, and the reason gives both predictions', async (t) => {
  // Named so the slow node comes first: the balanced split can then give it the first layer.
  const nodes = [node('fast', 1), node('a-slow', 1 / 16)];
  const c = choosePlan(m, nodes, none);
  t.same(c?.plan.stages.map((s) => s.node), ['fast'], stagesOf(c).join(' '));
  const idle = c?.idle[0];
  t.equal(idle?.node, 'a-slow');
  const re = /^node a-slow left out: the plan with it predicts ([\d.]+) tok\/s, without it ([\d.]+)$/;
  t.match(idle?.why ?? '', re);
  const [, withIt, without] = re.exec(idle?.why ?? '') ?? [];
  t.ok(Number(withIt) < Number(without), `${withIt} < ${without}`);
  t.ok(Math.abs(Number(without) - (c?.prediction.tokS ?? 0)) < 0.1, 'without it = the chosen plan');
  // 'balanced' keeps the old split, which gives the slow node a share.
  const b = choosePlan(m, nodes, none, { objective: 'balanced' });
  t.same(b?.plan.stages.map((s) => s.node), ['a-slow', 'fast'], `balanced: the bottleneck split uses it (${stagesOf(b).join(' ')})`);
  t.ok((b?.prediction.tokS ?? 0) < (c?.prediction.tokS ?? 0), 'and predicts slower for one stream');
});

t.test('a far node is left out; a measured slow node is left out though its probe said fast', async (t) => {
  const far = choosePlan(m, [node('a', 1), node('b', 1)], perf({ a: { legMs: 0.3 }, b: { legMs: 25 } }));
  t.same(far?.plan.stages.map((s) => s.node), ['a'], stagesOf(far).join(' '));
  t.match(far?.idle[0]?.why ?? '', /^node b left out: the plan with it predicts/);
  // b measured 8× slower than a on its stage: the measurement wins over the probe.
  const k = DEFAULT_MS_PER_MB_AT_1_GFLOPS;
  const measured = choosePlan(m, [node('a', 1), node('b', 1)], perf({ a: { msPerMb: k }, b: { msPerMb: 8 * k } }));
  t.same(measured?.plan.stages.map((s) => s.node), ['a']);
  t.equal(measured?.basis['b'], 'measured');
});

t.test('a node that probed its decode kernel is predicted from that probe, not its GFLOP/s (issue 20)', async (t) => {
  // Same GFLOP/s, but b's decode probe says it streams weights 3× slower (a device whose memory is
  // slow: the JS matmul probe runs in cache and cannot see it).
  const nodes = [node('a', 1), node('b', 1)];
  const s = msPerMbOf(nodes, perf({ a: { probeMsPerMb: 0.05 }, b: { probeMsPerMb: 0.15 } }));
  t.equal(s.get('a')?.ms, 0.05 * PROBE_TO_STAGE, 'probe × PROBE_TO_STAGE before anything is measured');
  t.equal(s.get('b')?.ms, 0.15 * PROBE_TO_STAGE);
  t.equal(s.get('a')?.measured, false);
  const one = tryPlan(m, [node('a', 1)])!;
  const costMb = (24 * 9.3 * MB + 85 * MB) / MB;
  const p = predictPlan(m, one, nodes, perf({ a: { probeMsPerMb: 0.05 } }));
  t.ok(Math.abs(p.cycleMs - (STAGE_OVERHEAD_MS + costMb * 0.05 * PROBE_TO_STAGE)) < 1e-9, `${p.cycleMs.toFixed(2)} ms per token from the probe`);
  // Once a measures itself, the ratio measured ÷ probe it shows is applied to b's probe.
  const fitted = msPerMbOf(nodes, perf({ a: { probeMsPerMb: 0.05, msPerMb: 0.1 }, b: { probeMsPerMb: 0.15 } }));
  t.equal(fitted.get('a')?.ms, 0.1);
  t.ok(Math.abs((fitted.get('b')?.ms ?? 0) - 0.3) < 1e-12, 'b: its probe × a\'s measured ÷ probe (2)');
  // An older node (no probe) still goes by speed.
  t.equal(msPerMbOf([node('c', 2)], none).get('c')?.ms, DEFAULT_MS_PER_MB_AT_1_GFLOPS / 2);
  // The planner leaves the slow-memory node out (GFLOP/s alone would have split with it).
  const c = choosePlan(m, nodes, perf({ a: { probeMsPerMb: 0.05, legMs: 0.3 }, b: { probeMsPerMb: 0.15, legMs: 0.3 } }));
  t.same(c?.plan.stages.map((x) => x.node), ['a'], stagesOf(c).join(' '));
});

t.test('never slower than one device: the choice beats or equals every single node', async (t) => {
  let seed = 7;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  for (let i = 0; i < 60; i++) {
    const nodes = Array.from({ length: 1 + Math.floor(rnd() * 4) }, (_, j) => node(`n${j}`, 2 ** (rnd() * 6 - 3), (100 + rnd() * 600) * MB));
    const pf = perf(Object.fromEntries(nodes.map((n) => [n.id, { legMs: rnd() * 10 }])));
    const c = choosePlan(m, nodes, pf);
    if (c === null) { t.equal(tryPlan(m, nodes), null, 'no plan only when nothing fits'); continue; }
    for (const n of nodes) {
      const alone = tryPlan(m, [n]);
      if (alone === null) continue;
      const p = predictPlan(m, alone, nodes, pf);
      t.ok(c.prediction.tokS >= p.tokS * 0.9 - 1e-9, `case ${i}: chosen ${c.prediction.tokS.toFixed(1)} ≥ 0.9 × ${n.id} alone ${p.tokS.toFixed(1)}`);
    }
  }
});

t.test('memory decides first: a model too big for the fast node alone uses the slow one too', async (t) => {
  const small = 300 * MB; // about half the model
  const c = choosePlan(m, [node('fast', 1, small), node('slow', 1 / 4)], none);
  t.equal(c?.plan.stages.length, 2);
});

t.test('adding a fast node raises the predicted tok/s', async (t) => {
  const before = choosePlan(m, [node('slow', 1 / 8)], none);
  const after = choosePlan(m, [node('slow', 1 / 8), node('fast', 1)], none);
  t.ok((after?.prediction.tokS ?? 0) > 4 * (before?.prediction.tokS ?? Infinity), `${before?.prediction.tokS.toFixed(1)} → ${after?.prediction.tokS.toFixed(1)} tok/s`);
});
