// int4 experts as sorted (token, expert) pairs (issue 23, src/model/onnx/moe-int4-sorted.ts): the
// graph the shard builder uses has no branch per expert (the If per expert cost a subgraph call and
// an [N, H] scatter + sum per expert: 1.3-1.9x slower at the 30B-A3B layer shape); it computes what
// the If graph it replaced did (to fp32 rounding); and a row's bits do not depend on the batch it
// ran in (each expert's slice is padded to an even row count, as MatMulNBits' one-row kernel
// rounds differently; the k outputs are summed in a fixed order).
import t from 'tap';
import ort from 'onnxruntime-node';
import { DT, GraphBuilder } from '../src/model/onnx/graph.ts';
import onnxProto from 'onnx-proto';
import { openCheckpoint } from '../src/model/index.ts';
import { buildShardGraph } from '../src/model/onnx/index.ts';
import { int4ExpertsIfGraph, type Int4ExpertsSpec } from '../src/model/onnx/moe.ts';
import { int4ExpertsSortedGraph } from '../src/model/onnx/moe-int4-sorted.ts';
import { quantizeInt4 } from '../src/model/quant-int4.ts';
import { tinyCheckpoint } from './helpers/runtime-exact.ts';

// A few experts, and many with k = 8 as Qwen3-30B-A3B routes (where a lone row sums its k outputs in
// another loop than a batch unless the graph fixes the order).
const SPEC: Int4ExpertsSpec = { numExperts: 8, topK: 3, normTopK: true, hidden: 256, inter: 128, block: 128, accuracyLevel: 4 };
const WIDE: Int4ExpertsSpec = { ...SPEC, numExperts: 64, topK: 8 };

let seed = 7;
function rand(n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = ((seed / 2 ** 32) * 2 - 1) * std * Math.sqrt(3);
  }
  return a;
}

const { hidden: H, inter: I, numExperts: E, block } = SPEC;
const weights = Array.from({ length: WIDE.numExperts }, () => ({ gateUp: quantizeInt4(rand(2 * I * H, 1 / 16), 2 * I, H, block), down: quantizeInt4(rand(H * I, 1 / 11), H, I, block) }));

async function session(kind: 'sorted' | 'if', spec = SPEC): Promise<{ sess: ort.InferenceSession; ops: string[] }> {
  const E = spec.numExperts;
  const g = new GraphBuilder();
  const x = g.input('x', DT.float, ['T', H]);
  const r = g.input('router', DT.float, ['T', E]);
  const y = (kind === 'sorted' ? int4ExpertsSortedGraph : int4ExpertsIfGraph)(g, x, r, spec, (e) => {
    const w = weights[e]!;
    return {
      gateUp: [g.init(`e${e}.gu`, DT.uint8, [2 * I, H / block, block / 2], w.gateUp.packed), g.init(`e${e}.gu.s`, DT.float, [w.gateUp.scales.length], w.gateUp.scales)],
      down: [g.init(`e${e}.d`, DT.uint8, [H, I / block, block / 2], w.down.packed), g.init(`e${e}.d.s`, DT.float, [w.down.scales.length], w.down.scales)],
    };
  });
  g.node('Identity', [y], ['y']);
  g.output('y', DT.float, ['T', H]);
  const { model, externalData } = g.finish('moe');
  const ops = (onnxProto.onnx.ModelProto.decode(model).graph?.node ?? []).map((n) => n.opType ?? '');
  const sess = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    externalData: externalData.map((f) => ({ path: f.path, data: f.data })),
  } as ort.InferenceSession.SessionOptions);
  return { sess, ops };
}

async function run(sess: ort.InferenceSession, x: Float32Array, r: Float32Array, T: number): Promise<Float32Array> {
  const E = r.length / T;
  const out = await sess.run({ x: new ort.Tensor('float32', x, [T, H]), router: new ort.Tensor('float32', r, [T, E]) });
  return out['y']!.data as Float32Array;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

t.test('the sorted graph has no branch per expert: two MatMulNBits per expert at top level, no If', async (t) => {
  const { ops } = await session('sorted');
  t.equal(ops.filter((o) => o === 'If').length, 0, 'no If node');
  t.equal(ops.filter((o) => o === 'MatMulNBits').length, 2 * E, 'gate|up and down of every expert run in the main graph');
});

// Not bit for bit: the If graph summed the k weighted outputs in expert order, this one in rank order.
t.test('the If-per-expert graph\'s results to fp32 rounding, for batches that route to some, all and a few experts', async (t) => {
  const sorted = (await session('sorted')).sess;
  const ifs = (await session('if')).sess;
  for (const T of [1, 2, 5, 16, 33]) {
    const x = rand(T * H, 1);
    const r = rand(T * E, 2);
    t.ok(maxDiff(await run(sorted, x, r, T), await run(ifs, x, r, T)) <= 1e-6, `T ${T}: within 1e-6`);
  }
  // Every token routed to the same experts (one expert's slice holds all T rows, the others none).
  const T = 7;
  const r = new Float32Array(T * E);
  for (let i = 0; i < T; i++) r.set([9, 8, 7], i * E + 2);
  const x = rand(T * H, 1);
  t.ok(maxDiff(await run(sorted, x, r, T), await run(ifs, x, r, T)) <= 1e-6, 'all rows on experts 2-4: within 1e-6');
});

t.test("a row's bits do not depend on the batch it ran in", async (t) => {
  for (const spec of [SPEC, WIDE]) {
    const { sess } = await session('sorted', spec);
    const T = 9;
    const x = rand(T * H, 1);
    const r = rand(T * spec.numExperts, 2);
    const all = await run(sess, x, r, T);
    let same = 0;
    for (let i = 0; i < T; i++) {
      const one = await run(sess, x.slice(i * H, (i + 1) * H), r.slice(i * spec.numExperts, (i + 1) * spec.numExperts), 1);
      if (sameBits(one, all.subarray(i * H, (i + 1) * H))) same++;
    }
    t.equal(same, T, `E ${spec.numExperts}, k ${spec.topK}: each row alone equals the same row in the batch of 9, bit for bit`);
  }
});

t.test('the shard builder uses it: an int4 tiny-qwen3-moe / tiny-mixtral stage holds no If per expert', async (t) => {
  for (const preset of ['tiny-qwen3-moe', 'tiny-mixtral'] as const) {
    const ckpt = openCheckpoint(await tinyCheckpoint(t, preset));
    const built = buildShardGraph(ckpt, { start: 0, end: ckpt.config.numLayers, quant: 'int4' }, { int4Block: 128, mapFile: () => null });
    const nodes = onnxProto.onnx.ModelProto.decode(built.model).graph?.node ?? [];
    const experts = ckpt.config.moe!.numExperts * ckpt.config.numLayers;
    // (Attention has If nodes of its own; an expert's would run MatMulNBits in a branch.)
    const expertIfs = nodes.filter((n) => n.opType === 'If' && (n.attribute ?? []).some((a) => (a.g?.node ?? []).some((b) => b.opType === 'MatMulNBits')));
    t.equal(expertIfs.length, 0, `${preset}: no If around an expert's MatMulNBits`);
    t.ok(nodes.filter((n) => n.opType === 'MatMulNBits').length >= 2 * experts, `${preset}: every expert's two MatMulNBits in the main graph`);
    ckpt.close();
  }
});
