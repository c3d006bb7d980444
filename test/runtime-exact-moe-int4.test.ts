// int4 experts (issue 23): the MoE shard graph's own int4 path (router → TopK → pairs sorted by
// expert → a MatMulNBits per expert's rows, moe-int4-sorted.ts) computes exactly the reference
// forward pass of the checkpoint its int4 weights stand for. The oracle is the reference run over a copy of the checkpoint whose
// quantized tensors hold their int4 values dequantized (same block, 128, the engine's default);
// with accuracy_level 0 (fp32 activations) MatMulNBits then multiplies the same numbers, so any
// routing, sorting, padding or gather mistake shows as a logit difference. 1, 2 and 3 stages, chunked
// prefill and a ragged decode batch, both families.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { dequantizeInt4, quantizeInt4 } from '../src/model/quant-int4.ts';
import { SafetensorsWriter } from '../src/model/safetensors.ts';
import { allTensorShapes, EMBED_TOKENS, moeTensorNames } from '../src/model/tensor-names.ts';
import { Chain, exactRun, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

const BLOCK = 128;
const SPLITS = [[[0, 4]], [[0, 2], [2, 4]], [[0, 1], [1, 3], [3, 4]]] as const;

/** A copy of `dir` whose matrices the engine quantizes hold their int4 values, dequantized. */
function dequantizedCopy(dir: string): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-moe-deq-'));
  for (const f of ['config.json', 'generation_config.json']) fs.copyFileSync(path.join(dir, f), path.join(out, f));
  const ckpt = openCheckpoint(dir);
  const cfg = ckpt.config;
  const routers = new Set<string>(Array.from({ length: cfg.numLayers }, (_, i) => moeTensorNames(cfg, i).router));
  const specs = allTensorShapes(cfg);
  const w = new SafetensorsWriter(path.join(out, 'model.safetensors'), specs.map(([name, shape]) => ({ name, dtype: 'F32' as const, shape })));
  for (const [name, shape] of specs) {
    const data = ckpt.read(name);
    // Kept fp32 by the graph: norms (1-D), routers, and an embedding whose width is no multiple of the block.
    const int4 = shape.length === 2 && !routers.has(name) && !(name === EMBED_TOKENS && cfg.hiddenSize % BLOCK !== 0);
    w.write(name, int4 ? dequantizeInt4(quantizeInt4(data, shape[0]!, shape[1]!, BLOCK)) : data);
  }
  w.close();
  ckpt.close();
  return out;
}

for (const preset of ['tiny-qwen3-moe', 'tiny-mixtral'] as const) {
  t.test(`${preset} int4: equals the reference over its dequantized weights in 1-3 stages`, async (t) => {
    const dir = await tinyCheckpoint(t, preset);
    const deq = dequantizedCopy(dir);
    t.teardown(() => fs.rmSync(deq, { recursive: true, force: true }));
    const a = tokenStream(22, 151936, 61);
    const b = tokenStream(17, 151936, 62);
    const refA = reference(deq, a);
    const refB = reference(deq, b);
    for (const split of SPLITS) {
      const chain = await Chain.open(t, dir, split, 'int4', { accuracyLevel: 0 });
      // Chunks of 5 and 7: odd row counts take the padded path.
      const r = await exactRun(chain, { a, aPrompt: 10, b, bPrompt: 7, chunk: split.length === 2 ? 5 : 10 }, refA, refB);
      t.ok(r.maxDiff <= 1e-4, `split ${JSON.stringify(split)}: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
      await chain.close();
    }
  });
}
