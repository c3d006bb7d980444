import t from 'tap';
import type { Test } from 'tap';
import { explainNoPlan, planStages, stageBytes, tryPlan, type ModelCost, type PlanNode } from '../src/cluster/index.ts';
import { isHearthError } from '../src/errors/index.ts';

const MB = 1e6;

function model(L: number, over: Partial<ModelCost> = {}): ModelCost {
  return { numLayers: L, layerBytes: new Array<number>(L).fill(100 * MB), kvBytesPerLayer: 10 * MB, firstBytes: 50 * MB, lastBytes: 60 * MB, headCost: 0, stageOverheadBytes: 20 * MB, ...over };
}

/** Independent check: enumerate every assignment of contiguous ranges to nodes (in id order,
 *  nodes may be skipped) and return the best bottleneck. */
function bruteBest(m: ModelCost, nodes: PlanNode[]): number {
  const sorted = [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1));
  let best = Infinity;
  const rec = (i: number, start: number, worst: number): void => {
    if (start === m.numLayers) { best = Math.min(best, worst); return; }
    if (i === sorted.length) return;
    rec(i + 1, start, worst); // skip node i
    const node = sorted[i] as PlanNode;
    for (let end = start + 1; end <= m.numLayers; end++) {
      if (stageBytes(m, start, end) > node.memory) break;
      let cost = 0;
      for (let l = start; l < end; l++) cost += m.layerBytes[l] as number;
      if (end === m.numLayers) cost += m.headCost;
      rec(i + 1, end, Math.max(worst, cost / node.speed));
    }
  };
  rec(0, 0, 0);
  return best;
}

function check(t: Test, m: ModelCost, nodes: PlanNode[]): void {
  const p = tryPlan(m, nodes);
  const brute = bruteBest(m, nodes);
  if (brute === Infinity) { t.equal(p, null, 'infeasible both ways'); return; }
  t.ok(p !== null);
  if (p === null) return;
  t.ok(Math.abs(p.bottleneck - brute) <= 1e-9 * brute, `bottleneck ${p.bottleneck} = brute force ${brute}`);
  // contiguous, covering, fits memory
  let at = 0;
  for (const s of p.stages) {
    t.equal(s.start, at);
    t.ok(s.end > s.start);
    const node = nodes.find((n) => n.id === s.node) as PlanNode;
    t.ok(stageBytes(m, s.start, s.end) <= node.memory, `stage ${s.node} fits`);
    at = s.end;
  }
  t.equal(at, m.numLayers);
}


t.test('equal nodes split evenly; the input order does not matter', async (t) => {
  const m = model(12);
  const nodes = [{ id: 'c', name: 'c', memory: 10e9, speed: 10 }, { id: 'a', name: 'a', memory: 10e9, speed: 10 }, { id: 'b', name: 'b', memory: 10e9, speed: 10 }];
  const p1 = planStages(m, nodes);
  const p2 = planStages(m, [...nodes].reverse());
  t.same(p1, p2, 'deterministic');
  t.same(p1.stages.map((s) => [s.node, s.start, s.end]), [['a', 0, 4], ['b', 4, 8], ['c', 8, 12]]);
});

t.test('a faster node gets more layers; a small one fewer', async (t) => {
  const m = model(12);
  const fast = planStages(m, [{ id: 'a', name: 'a', memory: 10e9, speed: 20 }, { id: 'b', name: 'b', memory: 10e9, speed: 10 }]);
  t.same(fast.stages.map((s) => s.end - s.start), [8, 4], 'speed 2:1 → layers 2:1');
  const small = planStages(m, [{ id: 'a', name: 'a', memory: 400 * MB, speed: 10 }, { id: 'b', name: 'b', memory: 10e9, speed: 10 }]);
  t.ok((small.stages[0]?.end ?? 0) <= 3, 'the 400 MB node holds at most 3 layers + embedding');
  check(t, m, [{ id: 'a', name: 'a', memory: 400 * MB, speed: 10 }, { id: 'b', name: 'b', memory: 10e9, speed: 10 }]);
});

t.test('the lm_head cost moves layers off the last stage', async (t) => {
  const m = model(8, { headCost: 400 * MB });
  const p = planStages(m, [{ id: 'a', name: 'a', memory: 10e9, speed: 10 }, { id: 'b', name: 'b', memory: 10e9, speed: 10 }]);
  t.same(p.stages.map((s) => s.end - s.start), [6, 2]);
});

t.test('optimal against brute force on random clusters', async (t) => {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 40; trial++) {
    const L = 2 + Math.floor(rnd() * 9);
    const m = model(L, { layerBytes: Array.from({ length: L }, () => (50 + rnd() * 100) * MB), headCost: rnd() * 200 * MB });
    const n = 1 + Math.floor(rnd() * 4);
    const nodes = Array.from({ length: n }, (_, i) => ({ id: `n${i}`, name: `n${i}`, memory: (200 + rnd() * 800) * MB, speed: 1 + Math.floor(rnd() * 20) }));
    check(t, m, nodes);
  }
});

t.test('no plan: says how many GB are missing and which node is short', async (t) => {
  const m = model(10); // 10×110 MB + 50 + 60 + 20 overhead = 1.23 GB as one stage
  const nodes = [{ id: 'a', name: 'laptop', memory: 500 * MB, speed: 10 }, { id: 'b', name: 'phone', memory: 300 * MB, speed: 10 }];
  try {
    planStages(m, nodes);
    t.fail('should not fit');
  } catch (e) {
    t.ok(isHearthError(e, 'HEARTH_ERR_NO_PLAN'));
    const msg = (e as Error).message;
    t.match(msg, /([\d.]+) MB missing: node (laptop|phone)/);
    // Independent check of the amount: with the named node given that much more, a plan exists.
    const m2 = /([\d.]+) MB missing: node (\w+) \((\w+)\)/.exec(msg);
    t.ok(m2 !== null);
    if (m2 === null) return;
    const extra = Number(m2[1]) * 1e6 + 0.1e6;
    const grown = nodes.map((n) => (n.id === m2[3] ? { ...n, memory: n.memory + extra } : n));
    t.ok(tryPlan(m, grown) !== null, 'adding the missing GB to that node makes it fit');
    const shrunk = nodes.map((n) => (n.id === m2[3] ? { ...n, memory: n.memory + extra - 3e6 } : n));
    t.equal(tryPlan(m, shrunk), null, 'and noticeably less does not');
  }
  t.match(explainNoPlan(m, []), /no worker has joined/);
});
