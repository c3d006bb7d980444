// What onnxruntime-node's CPU provider offers for mixture-of-experts, measured (issue 23 item 1):
// com.microsoft MoE (fp32) and QMoE (int4, block-wise scales) against a plain JS computation of the
// same routed SwiGLU experts, and QMoE's speed against a graph of our own (one MatMulNBits over all
// experts' gate|up, masked by the routing weights, then one over all experts' down: exact, but it
// computes E/k times the work). Facts and figures go to ../shared/ONNXRUNTIME.md ("MoE").
//
//   node bench/moe-ops.ts [--experts 32] [--hidden 2048] [--inter 768] [--k 8] [--block 128] [--steps 20]
//                         [--threads 2] [--rows 1,2,8,128] [--speed-only] [--all] [--profile sorted|if]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { DT, GraphBuilder, MS_DOMAIN } from '../src/model/onnx/graph.ts';
import { dequantizeInt4, quantizeInt4 } from '../src/model/quant-int4.ts';
import { int4ExpertsIfGraph } from '../src/model/onnx/moe.ts';
import { int4ExpertsSortedGraph } from '../src/model/onnx/moe-int4-sorted.ts';

const { values } = parseArgs({
  options: {
    experts: { type: 'string', default: '32' },
    hidden: { type: 'string', default: '2048' },
    inter: { type: 'string', default: '768' },
    k: { type: 'string', default: '8' },
    block: { type: 'string', default: '128' },
    steps: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    'speed-only': { type: 'boolean', default: false },
    all: { type: 'boolean', default: false },
    profile: { type: 'string' },
    rows: { type: 'string' },
  },
});

let seed = 12345;
function rand(n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = ((seed / 2 ** 32) * 2 - 1) * std * Math.sqrt(3);
  }
  return a;
}

interface Shape {
  E: number;
  H: number;
  I: number;
  k: number;
  block: number;
}

/** Experts as HF stores them: gate/up [E][I, H], down [E][H, I]. */
function experts(s: Shape): { gate: Float32Array[]; up: Float32Array[]; down: Float32Array[] } {
  const gate: Float32Array[] = [];
  const up: Float32Array[] = [];
  const down: Float32Array[] = [];
  for (let e = 0; e < s.E; e++) {
    gate.push(rand(s.I * s.H, 1 / Math.sqrt(s.H)));
    up.push(rand(s.I * s.H, 1 / Math.sqrt(s.H)));
    down.push(rand(s.H * s.I, 1 / Math.sqrt(s.I)));
  }
  return { gate, up, down };
}

/** fc1 [E, 2I, H] with gate and up rows interleaved (swiglu_fusion 1: row 2i gate_i, row 2i+1 up_i). */
function interleaved(s: Shape, gate: Float32Array[], up: Float32Array[]): Float32Array {
  const out = new Float32Array(s.E * 2 * s.I * s.H);
  for (let e = 0; e < s.E; e++) {
    for (let i = 0; i < s.I; i++) {
      out.set(gate[e]!.subarray(i * s.H, (i + 1) * s.H), ((e * 2 * s.I) + 2 * i) * s.H);
      out.set(up[e]!.subarray(i * s.H, (i + 1) * s.H), ((e * 2 * s.I) + 2 * i + 1) * s.H);
    }
  }
  return out;
}

/** The routed SwiGLU in float64: softmax over all E, top-k, renormalised when `norm`. */
function jsMoe(s: Shape, x: Float32Array, logits: Float32Array, T: number, gate: Float32Array[], up: Float32Array[], down: Float32Array[], norm: boolean): Float64Array {
  const y = new Float64Array(T * s.H);
  for (let t = 0; t < T; t++) {
    const l = logits.subarray(t * s.E, (t + 1) * s.E);
    const max = Math.max(...l);
    const p = Array.from(l, (v) => Math.exp(v - max));
    const sum = p.reduce((a, b) => a + b, 0);
    const order = p.map((v, e) => [v / sum, e] as const).sort((a, b) => b[0] - a[0]).slice(0, s.k);
    const tot = order.reduce((a, [v]) => a + v, 0);
    for (const [pv, e] of order) {
      const w = norm ? pv / tot : pv;
      const act = new Float64Array(s.I);
      for (let i = 0; i < s.I; i++) {
        let g = 0;
        let u = 0;
        for (let h = 0; h < s.H; h++) {
          g += gate[e]![i * s.H + h]! * x[t * s.H + h]!;
          u += up[e]![i * s.H + h]! * x[t * s.H + h]!;
        }
        act[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let h = 0; h < s.H; h++) {
        let d = 0;
        for (let i = 0; i < s.I; i++) d += down[e]![h * s.I + i]! * act[i]!;
        y[t * s.H + h]! += w * d;
      }
    }
  }
  return y;
}

async function session(g: GraphBuilder, threads: number, profilePrefix?: string): Promise<ort.InferenceSession> {
  const { model, externalData } = g.finish('moe');
  return ort.InferenceSession.create(model, {
    ...(profilePrefix !== undefined ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}),
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    externalData: externalData.map((f) => ({ path: f.path, data: f.data })),
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  } as ort.InferenceSession.SessionOptions);
}

const SWIGLU = { activation_type: 'swiglu', swiglu_fusion: 1, activation_alpha: { float: 1 }, activation_beta: { float: 0 } };

function moeGraph(s: Shape, fc1: Float32Array, fc2: Float32Array, norm: boolean): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', DT.float, ['T', s.H]);
  const r = g.input('router', DT.float, ['T', s.E]);
  const w1 = g.init('fc1', DT.float, [s.E, 2 * s.I, s.H], fc1);
  const w2 = g.init('fc2', DT.float, [s.E, s.H, s.I], fc2);
  g.node('MoE', [x, r, w1, '', w2], ['y'], { ...SWIGLU, k: s.k, normalize_routing_weights: norm ? 1 : 0 }, MS_DOMAIN);
  g.output('y', DT.float, ['T', s.H]);
  return g;
}

/** int4 of every expert stacked: [E * rows, cols] quantized row by row (MatMulNBits' layout). */
function q4(mats: Float32Array[], rows: number, cols: number, block: number) {
  const all = new Float32Array(mats.length * rows * cols);
  mats.forEach((m, e) => all.set(m, e * rows * cols));
  return quantizeInt4(all, mats.length * rows, cols, block);
}

function qmoeGraph(s: Shape, fc1: Float32Array, fc2: Float32Array[], norm: boolean) {
  const q1 = quantizeInt4(fc1, s.E * 2 * s.I, s.H, s.block);
  const q2 = q4(fc2, s.H, s.I, s.block);
  const g = new GraphBuilder();
  const x = g.input('x', DT.float, ['T', s.H]);
  const r = g.input('router', DT.float, ['T', s.E]);
  const w1 = g.init('fc1', DT.uint8, [s.E, 2 * s.I, s.H / 2], q1.packed);
  const s1 = g.init('fc1.scales', DT.float, [s.E, 2 * s.I, s.H / s.block], q1.scales);
  const w2 = g.init('fc2', DT.uint8, [s.E, s.H, s.I / 2], q2.packed);
  const s2 = g.init('fc2.scales', DT.float, [s.E, s.H, s.I / s.block], q2.scales);
  g.node('QMoE', [x, r, w1, s1, '', w2, s2], ['y'], { ...SWIGLU, k: s.k, normalize_routing_weights: norm ? 1 : 0, expert_weight_bits: 4, block_size: s.block }, MS_DOMAIN);
  g.output('y', DT.float, ['T', s.H]);
  return { g, q1, q2 };
}

/**
 * Our own graph: Softmax → TopK → scatter the (renormalised) weights into a dense [T, E] mask;
 * one MatMulNBits over every expert's interleaved gate|up [E*2I, H], SwiGLU, times each expert's
 * weight, then one MatMulNBits over every expert's down laid side by side [H, E*I].
 */
function denseGraph(s: Shape, gate: Float32Array[], up: Float32Array[], down: Float32Array[], norm: boolean): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', DT.float, ['T', s.H]);
  const r = g.input('router', DT.float, ['T', s.E]);
  const fc1 = quantizeInt4(interleaved(s, gate, up), s.E * 2 * s.I, s.H, s.block);
  const downCat = new Float32Array(s.H * s.E * s.I);
  for (let h = 0; h < s.H; h++) for (let e = 0; e < s.E; e++) downCat.set(down[e]!.subarray(h * s.I, (h + 1) * s.I), (h * s.E + e) * s.I);
  const fc2 = quantizeInt4(downCat, s.H, s.E * s.I, s.block);
  const nb = (a: string, q: ReturnType<typeof quantizeInt4>, name: string, N: number, K: number): string =>
    g.op('MatMulNBits', [a, g.init(name, DT.uint8, [N, K / s.block, s.block / 2], q.packed), g.init(`${name}.s`, DT.float, [N * (K / s.block)], q.scales)], { K, N, bits: 4, block_size: s.block, accuracy_level: 4 }, MS_DOMAIN);
  const probs = g.op('Softmax', [r], { axis: -1 });
  const [vals, idx] = g.node('TopK', [probs, g.i64([s.k])], 2, { axis: -1 }) as [string, string];
  const wts = norm ? g.op('Div', [vals, g.op('ReduceSum', [vals, g.i64([-1])], { keepdims: 1 })]) : vals;
  const mask = g.op('ScatterElements', [g.op('Mul', [r, g.f32(0)]), idx, wts], { axis: -1 });
  const gu = g.op('Reshape', [nb(x, fc1, 'fc1', s.E * 2 * s.I, s.H), g.i64([0, s.E, s.I, 2])]);
  const [gt, upv] = g.node('Split', [gu, g.i64([1, 1])], 2, { axis: -1 }) as [string, string];
  const act = g.op('Mul', [g.op('Mul', [gt, g.op('Sigmoid', [gt])]), upv]); // [T, E, I, 1]
  const weighted = g.op('Mul', [act, g.op('Reshape', [mask, g.i64([0, s.E, 1, 1])])]);
  g.node('Identity', [nb(g.op('Reshape', [weighted, g.i64([0, s.E * s.I])]), fc2, 'fc2', s.H, s.E * s.I)], ['y']);
  g.output('y', DT.float, ['T', s.H]);
  return g;
}

/**
 * hearth's int4 paths: 'sorted' (src/model/onnx/moe-int4-sorted.ts: pairs sorted by expert, one
 * gather, a MatMulNBits per expert slice) or the earlier TopK mask with one If per expert around
 * MatMulNBits ('if': over its routed rows; 'if-masked': over every row).
 */
function ifGraph(s: Shape, gate: Float32Array[], up: Float32Array[], down: Float32Array[], norm: boolean, kind: 'sorted' | 'if' | 'if-masked' = 'sorted'): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', DT.float, ['T', s.H]);
  const r = g.input('router', DT.float, ['T', s.E]);
  const spec = { numExperts: s.E, topK: s.k, normTopK: norm, hidden: s.H, inter: s.I, block: s.block, accuracyLevel: 4, gatherRows: kind !== 'if-masked' };
  const y = (kind === 'sorted' ? int4ExpertsSortedGraph : int4ExpertsIfGraph)(g, x, r, spec, (e) => {
    const gu = new Float32Array(2 * s.I * s.H);
    gu.set(gate[e]!, 0);
    gu.set(up[e]!, s.I * s.H);
    const q1 = quantizeInt4(gu, 2 * s.I, s.H, s.block);
    const q2 = quantizeInt4(down[e]!, s.H, s.I, s.block);
    return {
      gateUp: [g.init(`e${e}.gu`, DT.uint8, [2 * s.I, s.H / s.block, s.block / 2], q1.packed), g.init(`e${e}.gu.s`, DT.float, [2 * s.I * (s.H / s.block)], q1.scales)],
      down: [g.init(`e${e}.d`, DT.uint8, [s.H, s.I / s.block, s.block / 2], q2.packed), g.init(`e${e}.d.s`, DT.float, [s.H * (s.I / s.block)], q2.scales)],
    };
  });
  g.node('Identity', [y], ['y']);
  g.output('y', DT.float, ['T', s.H]);
  return g;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function run(sess: ort.InferenceSession, x: Float32Array, r: Float32Array, s: Shape, T: number): Promise<Float32Array> {
  const out = await sess.run({ x: new ort.Tensor('float32', x, [T, s.H]), router: new ort.Tensor('float32', r, [T, s.E]) });
  return out['y']!.data as Float32Array;
}

async function correctness(): Promise<void> {
  const s: Shape = { E: 8, H: 64, I: 32, k: 2, block: 32 };
  const T = 5;
  const { gate, up, down } = experts(s);
  const x = rand(T * s.H, 1);
  const logits = rand(T * s.E, 1);
  const fc1 = interleaved(s, gate, up);
  const fc2 = new Float32Array(s.E * s.H * s.I);
  down.forEach((d, e) => fc2.set(d, e * s.H * s.I));
  for (const norm of [true, false]) {
    const want = jsMoe(s, x, logits, T, gate, up, down, norm);
    const moe = await session(moeGraph(s, fc1, fc2, norm), 1);
    console.log(`MoE fp32 (E ${s.E}, k ${s.k}, normalize ${norm}): max |diff| vs JS ${maxDiff(await run(moe, x, logits, s, T), want).toExponential(2)}`);
    const { g, q1, q2 } = qmoeGraph(s, fc1, down, norm);
    // JS over the dequantized int4 weights: what QMoE should compute.
    const d1 = dequantizeInt4(q1);
    const d2 = dequantizeInt4(q2);
    const dg: Float32Array[] = [];
    const du: Float32Array[] = [];
    const dd: Float32Array[] = [];
    for (let e = 0; e < s.E; e++) {
      const ge = new Float32Array(s.I * s.H);
      const ue = new Float32Array(s.I * s.H);
      for (let i = 0; i < s.I; i++) {
        ge.set(d1.subarray((e * 2 * s.I + 2 * i) * s.H, (e * 2 * s.I + 2 * i + 1) * s.H), i * s.H);
        ue.set(d1.subarray((e * 2 * s.I + 2 * i + 1) * s.H, (e * 2 * s.I + 2 * i + 2) * s.H), i * s.H);
      }
      dg.push(ge);
      du.push(ue);
      dd.push(d2.slice(e * s.H * s.I, (e + 1) * s.H * s.I));
    }
    const wantQ = jsMoe(s, x, logits, T, dg, du, dd, norm);
    const qmoe = await session(g, 1);
    const gotQ = await run(qmoe, x, logits, s, T);
    console.log(`QMoE int4 block ${s.block}: max |diff| vs JS on the dequantized weights ${maxDiff(gotQ, wantQ).toExponential(2)}; vs fp32 weights ${maxDiff(gotQ, want).toExponential(2)} (max |y| ${Math.max(...Array.from(want, Math.abs)).toFixed(3)})`);
    const dense = await session(denseGraph(s, gate, up, down, norm), 1);
    console.log(`own dense-masked MatMulNBits graph: max |diff| vs JS fp32 ${maxDiff(await run(dense, x, logits, s, T), want).toExponential(2)}`);
    const ifs = await session(ifGraph(s, gate, up, down, norm, 'if'), 1);
    const gotIf = await run(ifs, x, logits, s, T);
    console.log(`If-per-expert MatMulNBits graph: max |diff| vs JS fp32 ${maxDiff(gotIf, want).toExponential(2)}`);
    const sorted = await session(ifGraph(s, gate, up, down, norm, 'sorted'), 1);
    const gotSorted = await run(sorted, x, logits, s, T);
    console.log(`hearth's sorted-pairs MatMulNBits graph: max |diff| vs JS fp32 ${maxDiff(gotSorted, want).toExponential(2)}; vs the If graph ${maxDiff(gotSorted, gotIf).toExponential(2)}`);
  }
}

async function speed(): Promise<void> {
  const s: Shape = { E: Number(values.experts), H: Number(values.hidden), I: Number(values.inter), k: Number(values.k), block: Number(values.block) };
  const threads = Number(values.threads);
  const steps = Number(values.steps);
  console.log(`speed: E ${s.E}, H ${s.H}, I ${s.I}, k ${s.k}, block ${s.block}, ${threads} threads`);
  const { gate, up, down } = experts(s);
  const sorted = await session(ifGraph(s, gate, up, down, true, 'sorted'), threads);
  const ifs = await session(ifGraph(s, gate, up, down, true, 'if'), threads);
  // QMoE, the dense-masked graph and the If graph over every row: slow, measured once (--all).
  const others = values.all
    ? { qmoe: await session(qmoeGraph(s, interleaved(s, gate, up), down, true).g, threads), dense: await session(denseGraph(s, gate, up, down, true), threads), ifm: await session(ifGraph(s, gate, up, down, true, 'if-masked'), threads) }
    : null;
  for (const T of (values.rows ?? '1,2,8,128').split(',').map(Number)) {
    const x = rand(T * s.H, 1);
    const r = rand(T * s.E, 1);
    const time = async (sess: ort.InferenceSession, n: number): Promise<number> => {
      await run(sess, x, r, s, T);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await run(sess, x, r, s, T);
      return (performance.now() - t0) / n;
    };
    const n = T >= 128 ? Math.max(2, steps / 10) : steps;
    // Interleaved (sorted, if, sorted, if) so both see the same machine load; best of two each.
    const a = await time(sorted, n);
    const b = await time(ifs, n);
    const a2 = Math.min(a, await time(sorted, n));
    const b2 = Math.min(b, await time(ifs, n));
    let line = `T ${T}: sorted pairs ${a2.toFixed(2)} ms, If per expert ${b2.toFixed(2)} ms (${(b2 / a2).toFixed(2)}× the sorted)`;
    if (others !== null) {
      const q = await time(others.qmoe, Math.max(2, Math.round(n / 4)));
      const d = await time(others.dense, Math.max(2, Math.round(n / 4)));
      const m = await time(others.ifm, n);
      line += `; If over every row masked ${m.toFixed(2)} ms, QMoE ${q.toFixed(2)} ms, dense-masked ${d.toFixed(2)} ms`;
    }
    console.log(line);
  }
}

/** Per-op time of one graph kind at each row count (onnxruntime profiling, summed by op type). */
async function profile(kind: 'sorted' | 'if'): Promise<void> {
  const s: Shape = { E: Number(values.experts), H: Number(values.hidden), I: Number(values.inter), k: Number(values.k), block: Number(values.block) };
  const { gate, up, down } = experts(s);
  for (const T of (values.rows ?? '1,128').split(',').map(Number)) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-prof-'));
    const sess = await session(ifGraph(s, gate, up, down, true, kind), Number(values.threads), path.join(dir, 'p'));
    const x = rand(T * s.H, 1);
    const r = rand(T * s.E, 1);
    const n = T >= 128 ? 3 : 20;
    for (let i = 0; i < n; i++) await run(sess, x, r, s, T);
    sess.endProfiling(); // onnxruntime-node returns no name: the trace is the one file in dir
    const file = path.join(dir, fs.readdirSync(dir)[0] as string);
    const events = JSON.parse(fs.readFileSync(file, 'utf8')) as { cat?: string; name?: string; dur?: number; args?: { op_name?: string } }[];
    fs.rmSync(dir, { recursive: true, force: true });
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const total = runs.slice(1).reduce((a, e) => a + (e.dur ?? 0), 0) / (runs.length - 1);
    const byOp = new Map<string, { us: number; calls: number }>();
    // The first run warms up; its nodes are the first 1/n of the node events.
    const nodes = events.filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time'));
    for (const e of nodes.slice(nodes.length / n)) {
      const op = e.args?.op_name ?? '?';
      const o = byOp.get(op) ?? { us: 0, calls: 0 };
      o.us += (e.dur ?? 0) / (n - 1);
      o.calls += 1 / (n - 1);
      byOp.set(op, o);
    }
    const rows = [...byOp].sort((a, b) => b[1].us - a[1].us);
    const inNodes = rows.reduce((a, [, o]) => a + o.us, 0);
    console.log(`profile ${kind}, T ${T}: ${(total / 1000).toFixed(2)} ms a run, ${(inNodes / 1000).toFixed(2)} ms in nodes`);
    for (const [op, o] of rows.slice(0, 10)) console.log(`  ${op.padEnd(22)} ${(o.us / 1000).toFixed(3).padStart(8)} ms  ${((100 * o.us) / total).toFixed(1).padStart(5)}%  ${o.calls.toFixed(0)} calls`);
  }
}

if (values.profile !== undefined) {
  await profile(values.profile as 'sorted' | 'if');
} else {
  if (!values['speed-only']) await correctness();
  await speed();
}
