// Issue 20 (gap B): a stage's rotary cos/sin tables cover the context the gateway serves, not the
// model's max_position_embeddings (131072 on Llama 3.x: 67 MB a stage at head_dim 128), and never
// more positions than the stage's KV allowance can hold a sequence of (rope-rows.ts). They are fed
// by the session, so the built graph (and the shard cache) does not depend on the context at all.
// Positions inside compute bit for bit as before; a step past them is refused instead of reading
// past the tables. Through a real `hearth up`, the workers report the smaller weights.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { modelCostsFromCheckpoint } from '../src/cluster/model-costs.ts';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { buildShardGraph, ropePositions } from '../src/model/onnx/index.ts';
import { createShardEngine } from '../src/runtime/index.ts';
import { ropeRows } from '../src/runtime/rope-rows.ts';
import { tokenStream } from './helpers/runtime-exact.ts';
import { startHearth } from './helpers/hearth.ts';

const MAX = 131072;
const HALF = 8; // head_dim 16
const rope = (positions: number): number => 2 * positions * HALF * 4;

t.test('tables, planner count and engine follow the context served; outputs are unchanged', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-rope-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset: 'tiny-llama', numLayers: 2, vocabSize: 512, maxPositions: MAX, tokenizer: false, seed: 7 });
  const ckpt = openCheckpoint(dir);
  const g = buildShardGraph(ckpt, { start: 0, end: 2, quant: 'none' }, { mapFile: () => 'ckpt0.safetensors' });
  t.ok(g.weightBytes < rope(MAX), `the graph holds no table rows (${g.weightBytes} B of weights, tables for the model's maximum would be ${rope(MAX)})`);
  t.equal(ropePositions(ckpt.config, 1 << 20), MAX, 'never more than the model\'s maximum');
  const costFull = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 64 });
  const costCtx = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 64, maxPositions: 32 });
  t.equal(costFull.stageOverheadBytes - costCtx.stageOverheadBytes, rope(64) - rope(32), 'the planner counts rows for the KV reserve, within the context');
  // A budget of KV + tables for 40 positions of 2 layers holds 40 rows, whatever the context.
  const perPos = 2 * 2 * ckpt.config.numKvHeads * ckpt.config.headDim * 4 + rope(1);
  t.equal(ropeRows(ckpt.config, 4096, 40 * perPos + perPos - 1, 2, 4), 40, 'rows = what the budget holds');
  t.equal(ropeRows(ckpt.config, 30, 40 * perPos, 2, 4), 30, 'never past the context served');
  t.equal(ropeRows(ckpt.config, 30, null, 2, 4), 30, 'no budget: the context served');
  ckpt.close();

  const a = await createShardEngine(dir, { start: 0, end: 2, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null });
  const b = await createShardEngine(dir, { start: 0, end: 2, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null, maxPositions: 48 });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  t.equal(b.info.positions, 48, 'the engine says what it was built for');
  const c = await createShardEngine(dir, { start: 0, end: 2, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null, kvBudgetBytes: 40 * perPos });
  t.teardown(() => c.close());
  t.equal(c.info.positions, 40, 'a KV budget for 40 positions builds tables for 40, not the 131072 of the context');
  t.equal(c.weightBytes(), a.weightBytes() - rope(MAX) + rope(40), 'and reports those rows beside its weights');
  const toks = tokenStream(40, 512, 3);
  const run = async (e: typeof a): Promise<Float32Array[]> => {
    const out: Float32Array[] = [];
    const [p] = await e.run([{ seq: 's', pos: 0, n: 32, tokens: Int32Array.from(toks.slice(0, 32)) }]);
    out.push(p!.logits!);
    for (let i = 32; i < 40; i++) out.push((await e.run([{ seq: 's', pos: i, n: 1, tokens: Int32Array.of(toks[i]!) }]))[0]!.logits!);
    return out;
  };
  const la = await run(a);
  const lb = await run(b);
  t.ok(la.every((x, i) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(lb[i]!.buffer, lb[i]!.byteOffset, lb[i]!.byteLength))), 'logits bit-identical inside the context');
  await t.rejects(b.run([{ seq: 's', pos: 40, n: 9, tokens: Int32Array.from(toks.slice(0, 9)) }]), { code: 'HEARTH_ERR_CONTEXT_LENGTH' }, 'a step past the tables is refused');
  t.equal(b.kvLength('s'), 40, 'and leaves the sequence as it was');
});

t.test('workers build the tables for the gateway\'s context (hearth up, max context 256)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-rope-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset: 'tiny-llama', numLayers: 2, vocabSize: 4096, maxPositions: MAX, seed: 8 });
  const prev = process.env['HEARTH_MODEL_MAX_CONTEXT'];
  process.env['HEARTH_MODEL_MAX_CONTEXT'] = '256';
  t.teardown(() => { if (prev === undefined) delete process.env['HEARTH_MODEL_MAX_CONTEXT']; else process.env['HEARTH_MODEL_MAX_CONTEXT'] = prev; });
  const h = await startHearth(t, { modelDir: dir, workers: 2 });
  t.teardown(() => h.stop());
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: h.modelId, messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, temperature: 0 });
  t.equal(r.choices.length, 1, 'serves');
  const view = await (await fetch(`${h.origin}/v1/cluster`, { headers: { authorization: `Bearer ${h.apiKey}` } })).json() as { model: { contextLength: number }; nodes: { range: [number, number] | null; memory: { weights: number } }[] };
  t.equal(view.model.contextLength, 256, 'the gateway serves 256 positions');
  const staged = view.nodes.filter((n) => n.range !== null);
  t.ok(staged.length >= 1, 'stages are placed');
  // Each stage's weights are tiny next to 131072-position tables (8 MB): they hold 256 rows.
  for (const n of staged) t.ok(n.memory.weights < rope(MAX), `stage [${n.range![0]}, ${n.range![1]}) holds ${(n.memory.weights / 2 ** 20).toFixed(2)} MB, less than the 8 MB of full tables`);
});
