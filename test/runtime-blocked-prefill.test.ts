// Issue 25: a prefill chunk's attention never materializes its [G*S, P+S] scores. The fused graph
// scores the past in blocks of KEY_BLOCK positions inside a Loop (an online softmax), so what a
// chunk holds at once does not grow with the context (at 32k a 128-position chunk's scores were
// 118 MB per tensor, and chunks had to run in parts of a few positions to stay in memory).
// Checked here: the graph has that shape (no softmax over a whole row, the past scored in a Loop),
// and a prompt whose past spans several blocks, the last one partial, still equals the reference.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import t from 'tap';
import { KEY_BLOCK } from '../src/model/onnx/attention.ts';
import { ShardSession } from '../src/runtime/shard-session.ts';
import { maxAbsDiff, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

type Graph = onnxProto.onnx.IGraphProto;
type Node = onnxProto.onnx.INodeProto;

/** Every node of a graph and of its subgraphs, each with the chain of branch names above it. */
function walk(g: Graph, where: string[] = [], out: { node: Node; where: string[] }[] = []): { node: Node; where: string[] }[] {
  for (const node of g.node ?? []) {
    out.push({ node, where });
    for (const a of node.attribute ?? []) if (a.g) walk(a.g, [...where, `${node.opType}.${a.name}`], out);
  }
  return out;
}

const dir = await tinyCheckpoint(t, 'tiny-qwen3');

t.test('the prefill branch scores the past in a Loop, and softmaxes no whole row', async (t) => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-blocked-'));
  t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
  const s = await ShardSession.create(dir, { start: 0, end: 2, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: cache, attention: 'fused' });
  await s.release();
  const entry = fs.readdirSync(cache).find((f) => fs.existsSync(path.join(cache, f, 'model.onnx')));
  t.ok(entry, 'the built shard is in the cache');
  const model = onnxProto.onnx.ModelProto.decode(fs.readFileSync(path.join(cache, entry as string, 'model.onnx')));
  const nodes = walk(model.graph as Graph);
  // The chunk path: If(multi).then_branch -> If(exact).else_branch is the plain prefill.
  const inPrefill = nodes.filter((n) => n.where.some((w) => w === 'If.then_branch') && n.where.some((w) => w === 'If.else_branch'));
  t.ok(inPrefill.length > 0, 'the prefill branch is there');
  t.equal(inPrefill.filter((n) => n.node.opType === 'Softmax').length, 0, 'no Softmax over a row of P+S scores');
  t.equal(inPrefill.filter((n) => n.node.opType === 'Loop' && n.where.length === 2).length, 2, 'one key-block Loop per layer (2 layers)');
  const inLoop = inPrefill.filter((n) => n.where.some((w) => w === 'Loop.body'));
  t.ok(inLoop.some((n) => n.node.opType === 'FusedMatMul'), 'the past is scored inside the Loop');
  const outside = inPrefill.filter((n) => !n.where.some((w) => w === 'Loop.body') && n.node.opType === 'Concat' && n.node.input?.some((i) => /past_key|past_value/.test(i)));
  t.equal(outside.length, 0, 'the past keys and values are not copied into one [P+S] tensor');
  t.equal(nodes.filter((n) => n.where.length === 0 && n.node.opType === 'Expand').length, 0, 'no [G*S, P+S] mask built in the main graph (every step ran it, decode too)');
});

t.test(`a past of ${KEY_BLOCK + 200} positions (two key blocks, the last partial) equals the reference`, async (t) => {
  const n = KEY_BLOCK + 200;
  const toks = tokenStream(n, 151936, 25);
  const ref = reference(dir, toks);
  const s = await ShardSession.create(dir, { start: 0, end: 4, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null, attention: 'fused' });
  t.teardown(() => s.release());
  const chunk = 256;
  let maxDiff = 0;
  let chunks = 0;
  for (let pos = 0; pos < n; pos += chunk) {
    const m = Math.min(chunk, n - pos);
    const [r] = await s.run([{ seq: 'long', pos, n: m, tokens: Int32Array.from(toks.slice(pos, pos + m)), logitRows: 2 }]);
    const v = ref[0]?.length ?? 0;
    const logits = r?.logits ?? new Float32Array(0);
    for (let k = 0; k < 2; k++) maxDiff = Math.max(maxDiff, maxAbsDiff(logits.subarray(k * v, (k + 1) * v), ref[pos + m - 2 + k] ?? []));
    chunks++;
  }
  t.ok(maxDiff <= 1e-4, `last two positions of every chunk: max |diff| ${maxDiff.toExponential(2)}`);
  t.equal(s.runs, chunks, 'each chunk ran as one step, whatever its context');
  const [d] = await s.run([{ seq: 'long', pos: n, n: 1, tokens: Int32Array.of(7) }]);
  t.equal(d?.logits?.length, ref[0]?.length, 'decode goes on after it');
});
