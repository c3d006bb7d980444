// Mixture-of-experts shard graphs (issue 23) equal the reference forward pass for 1, 2 and 3 uneven
// stages, through chunked prefill and a ragged two-sequence decode batch: tiny-qwen3-moe (top-2 of
// 8, norm_topk_prob), a qwen3_moe variant with a dense layer (mlp_only_layers) and no
// renormalisation, and tiny-mixtral (top-2 of 4, always renormalised). Also: the checkpoint parses
// back to the MoE config the generator meant, and a MoE layer has no dense MLP tensors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { Chain, exactRun, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

const SPLITS = [[[0, 4]], [[0, 2], [2, 4]], [[0, 1], [1, 3], [3, 4]]] as const;
const VOCAB = 151936;

async function exactAllSplits(t: Test, dir: string, seed: number): Promise<void> {
  const a = tokenStream(24, VOCAB, seed);
  const b = tokenStream(19, VOCAB, seed + 1);
  const refA = reference(dir, a);
  const refB = reference(dir, b);
  for (const split of SPLITS) {
    const chain = await Chain.open(t, dir, split);
    const r = await exactRun(chain, { a, aPrompt: 12, b, bPrompt: 7, chunk: split.length === 2 ? 5 : 12 }, refA, refB);
    t.ok(r.maxDiff <= 1e-4, `split ${JSON.stringify(split)}: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
    await chain.close();
  }
}

t.test('tiny-qwen3-moe: config, tensors, and logits equal the reference in 1-3 stages', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen3-moe');
  const ckpt = openCheckpoint(dir);
  t.same(ckpt.config.moe, { naming: 'qwen3_moe', numExperts: 8, topK: 2, normTopK: true, expertIntermediateSize: 32, sparseLayers: [0, 1, 2, 3] });
  t.ok(ckpt.has('model.layers.1.mlp.experts.7.down_proj.weight'), 'expert tensors are there');
  t.notOk(ckpt.has('model.layers.1.mlp.down_proj.weight'), 'a routed layer has no dense MLP');
  ckpt.close();
  await exactAllSplits(t, dir, 31);
});

t.test('qwen3_moe with a dense layer (mlp_only_layers) and norm_topk_prob false', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-qwen3-moe-var-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset: 'tiny-qwen3-moe', tokenizer: false, normTopK: false, mlpOnlyLayers: [2], seed: 7 });
  const ckpt = openCheckpoint(dir);
  t.same(ckpt.config.moe?.sparseLayers, [0, 1, 3]);
  t.equal(ckpt.config.moe?.normTopK, false);
  t.ok(ckpt.has('model.layers.2.mlp.down_proj.weight'), 'layer 2 is dense');
  ckpt.close();
  await exactAllSplits(t, dir, 41);
});

t.test('tiny-mixtral: block_sparse_moe names, logits equal the reference in 1-3 stages', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-mixtral');
  const ckpt = openCheckpoint(dir);
  t.same(ckpt.config.moe, { naming: 'mixtral', numExperts: 4, topK: 2, normTopK: true, expertIntermediateSize: 64, sparseLayers: [0, 1, 2, 3] });
  t.ok(ckpt.has('model.layers.0.block_sparse_moe.experts.3.w2.weight'));
  t.ok(ckpt.has('model.layers.0.block_sparse_moe.gate.weight'));
  ckpt.close();
  await exactAllSplits(t, dir, 51);
});
