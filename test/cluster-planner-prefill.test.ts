// Issue 22: a split balanced for prefill as well as decode. A prompt's chunks flow through the
// stages concurrently, so its first token waits on the stage with the most layers (the head runs
// for one position only); the decode-balanced split of the 0.5B int4 shape over 2 equal nodes was
// [0,17)/[17,24) — stage 0 prefilled 71% of every prompt, TTFT 0.77× one node's.
import t from 'tap';
import { choosePlan, type NodePerf } from '../src/cluster/plan-choice.ts';
import { PREFILL_MARGIN, PREFILL_SUM_MARGIN, stageBytes, tryPlan, type ModelCost, type PlanNode, type StagePlan } from '../src/cluster/planner.ts';

const MB = 1e6;
// The 0.5B int4 shape as model-costs.ts counts it: 24 layers of 7.93 MB, a tied 72.3 MB head.
const q05: ModelCost = { numLayers: 24, layerBytes: new Array<number>(24).fill(7.93 * MB), kvBytesPerLayer: 1 * MB, firstBytes: 72.3 * MB, lastBytes: 72.3 * MB, headCost: 72.3 * MB, stageOverheadBytes: 67 * MB };
const node = (id: string, speed: number, memory = 10e9): PlanNode => ({ id, name: id, memory, speed });
const none = new Map<string, NodePerf>();

const layerCost = (m: ModelCost, s: number, e: number): number => { let c = 0; for (let i = s; i < e; i++) c += m.layerBytes[i] as number; return c; };
const decodeCost = (m: ModelCost, s: number, e: number): number => layerCost(m, s, e) + (e === m.numLayers ? m.headCost : 0);
const speedOf = (nodes: readonly PlanNode[], id: string): number => (nodes.find((n) => n.id === id) as PlanNode).speed;
const prefillMax = (m: ModelCost, p: StagePlan, nodes: readonly PlanNode[]): number => Math.max(...p.stages.map((s) => layerCost(m, s.start, s.end) / speedOf(nodes, s.node)));
const decodeMax = (m: ModelCost, p: StagePlan, nodes: readonly PlanNode[]): number => Math.max(...p.stages.map((s) => decodeCost(m, s.start, s.end) / speedOf(nodes, s.node)));
const decodeSum = (m: ModelCost, p: StagePlan, nodes: readonly PlanNode[]): number => p.stages.reduce((a, s) => a + decodeCost(m, s.start, s.end) / speedOf(nodes, s.node), 0);

t.test('2 equal nodes, 0.5B int4: each stage prefills half of a prompt, decode capacity within the margin', async (t) => {
  const nodes = [node('a', 1), node('b', 1)];
  for (const objective of ['balanced', 'fastest'] as const) {
    const c = choosePlan(q05, nodes, new Map([['a', { msPerMb: 0.075, legMs: 0.1 }], ['b', { msPerMb: 0.075, legMs: 0.1 }]]), { objective });
    const ranges = c?.plan.stages.map((s) => [s.start, s.end]) ?? [];
    t.same(ranges, [[0, 12], [12, 24]], `${objective}: ${JSON.stringify(ranges)} (the decode-only split is [0,17)/[17,24))`);
  }
  const decodeOnly = tryPlan(q05, nodes) as StagePlan;
  t.same(decodeOnly.stages.map((s) => s.end - s.start), [17, 7], 'without the option: the decode optimum, as before');
  const p = tryPlan(q05, nodes, { prefillMargin: PREFILL_MARGIN }) as StagePlan;
  t.ok(decodeMax(q05, p, nodes) <= decodeOnly.bottleneck * (1 + PREFILL_MARGIN), 'slowest decode stage within the margin of the best');
  t.ok(Math.abs(p.bottleneck - decodeMax(q05, p, nodes)) < 1e-6, 'bottleneck is the decode one (what capacity is predicted from)');
});

t.test('3 equal nodes: the largest prefill share shrinks, the head stage stays light', async (t) => {
  const nodes = [node('a', 1), node('b', 1), node('c', 1)];
  const decodeOnly = tryPlan(q05, nodes) as StagePlan;
  const p = tryPlan(q05, nodes, { prefillMargin: PREFILL_MARGIN }) as StagePlan;
  t.ok(prefillMax(q05, p, nodes) < prefillMax(q05, decodeOnly, nodes), `${p.stages.map((s) => `[${s.start},${s.end})`).join(' ')} vs ${decodeOnly.stages.map((s) => `[${s.start},${s.end})`).join(' ')}`);
});

t.test('an uneven pair: single-stream decode (the sum of stage times) never pays more than PREFILL_SUM_MARGIN', async (t) => {
  for (const [fast, slow] of [[2, 1], [3, 1], [1.3, 1]]) {
    const nodes = [node('a', fast as number), node('b', slow as number)];
    const d = tryPlan(q05, nodes) as StagePlan;
    const p = tryPlan(q05, nodes, { prefillMargin: PREFILL_MARGIN }) as StagePlan;
    t.ok(decodeSum(q05, p, nodes) <= decodeSum(q05, d, nodes) * (1 + PREFILL_SUM_MARGIN) * (1 + 1e-9), `${fast}:${slow}: sum ${decodeSum(q05, p, nodes).toFixed(0)} vs ${decodeSum(q05, d, nodes).toFixed(0)}`);
    t.ok(prefillMax(q05, p, nodes) <= prefillMax(q05, d, nodes) + 1e-6, 'prefill no worse than the decode split');
  }
});

/** Brute force: the smallest prefill bottleneck over splits that fit and keep every stage's decode
 *  time ≤ cap. */
function bruteBest(m: ModelCost, nodesIn: PlanNode[], cap: number): number {
  const nodes = [...nodesIn].sort((a, b) => (a.id < b.id ? -1 : 1));
  let best = Infinity;
  const rec = (i: number, start: number, worst: number): void => {
    if (start === m.numLayers) { best = Math.min(best, worst); return; }
    if (i === nodes.length) return;
    rec(i + 1, start, worst);
    const n = nodes[i] as PlanNode;
    for (let end = start + 1; end <= m.numLayers; end++) {
      if (stageBytes(m, start, end) > n.memory) break;
      if (decodeCost(m, start, end) / n.speed > cap * (1 + 1e-12)) break;
      rec(i + 1, end, Math.max(worst, layerCost(m, start, end) / n.speed));
    }
  };
  rec(0, 0, 0);
  return best;
}

t.test('optimal against brute force on random clusters and models', async (t) => {
  let seed = 22;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let balanced = 0;
  for (let k = 0; k < 60; k++) {
    const L = 4 + Math.floor(rnd() * 8);
    const m: ModelCost = { numLayers: L, layerBytes: Array.from({ length: L }, () => (50 + rnd() * 100) * MB), kvBytesPerLayer: 5 * MB, firstBytes: 40 * MB, lastBytes: 40 * MB, headCost: rnd() * 400 * MB, stageOverheadBytes: 10 * MB };
    const nodes = Array.from({ length: 1 + Math.floor(rnd() * 4) }, (_, i) => node(`n${i}`, 1 + Math.floor(rnd() * 4), (300 + rnd() * 1500) * MB));
    const d = tryPlan(m, nodes);
    const p = tryPlan(m, nodes, { prefillMargin: PREFILL_MARGIN });
    if (d === null) { t.equal(p, null, 'infeasible both ways'); continue; }
    if (p === null) { t.fail('a decode plan exists, so a prefill one must'); continue; }
    let at = 0;
    for (const s of p.stages) {
      t.equal(s.start, at, 'contiguous');
      t.ok(stageBytes(m, s.start, s.end) <= (nodes.find((n) => n.id === s.node) as PlanNode).memory, 'fits');
      at = s.end;
    }
    t.equal(at, L, 'covers every layer');
    t.ok(decodeMax(m, p, nodes) <= d.bottleneck * (1 + PREFILL_MARGIN) * (1 + 1e-9), 'decode within the margin');
    t.ok(decodeSum(m, p, nodes) <= decodeSum(m, d, nodes) * (1 + PREFILL_SUM_MARGIN) * (1 + 1e-9), 'single-stream within its margin');
    const same = JSON.stringify(p.stages.map((s) => [s.node, s.start, s.end])) === JSON.stringify(d.stages.map((s) => [s.node, s.start, s.end]));
    if (!same) {
      balanced++;
      const brute = bruteBest(m, nodes, d.bottleneck * (1 + PREFILL_MARGIN));
      t.ok(Math.abs(prefillMax(m, p, nodes) - brute) <= 1e-9 * brute, `prefill bottleneck ${prefillMax(m, p, nodes)} = brute force ${brute}`);
    }
  }
  t.ok(balanced > 5, `the prefill balance changed ${balanced} of 60 plans`);
});

t.test('none: probe speeds alone give the same split (the plan a fresh cluster starts on)', async (t) => {
  const c = choosePlan(q05, [node('a', 10), node('b', 10)], none, { objective: 'balanced' });
  t.same(c?.plan.stages.map((s) => s.end - s.start), [12, 12]);
});
