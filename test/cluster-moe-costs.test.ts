// The planner's per-token cost knows a MoE token reads k of E experts (issue 23): memory counts
// every expert (a stage holds them all), the cost counts k/E of them, and a plan's stage time is
// that cost. A dense model's cost is unchanged.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { modelCostsFromCheckpoint, tryPlan } from '../src/cluster/index.ts';
import { expertReadFraction } from '../src/cluster/moe-costs.ts';
import { generateCheckpoint, openCheckpoint, resolveShape, shapeToConfig } from '../src/model/index.ts';

async function costs(t: Test, preset: 'tiny-qwen3-moe' | 'tiny-qwen3' | 'tiny-mixtral', quant: 'none' | 'int4') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-moe-costs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset, vocabSize: 512, tokenizer: false });
  const ckpt = openCheckpoint(dir);
  const cost = modelCostsFromCheckpoint(ckpt, { quant, kvTokens: 256, int4Block: 32 });
  ckpt.close();
  return cost;
}

t.test('a qwen3_moe layer costs its dense part plus k/E of its experts per token', async (t) => {
  const { hiddenSize: H, numExperts: E = 0, topK: k = 0, expertIntermediateSize: I = 0 } = resolveShape({ preset: 'tiny-qwen3-moe' });
  for (const quant of ['none', 'int4'] as const) {
    const cost = await costs(t, 'tiny-qwen3-moe', quant);
    // Held bytes of one expert's three [I, H] / [H, I] matrices: fp32, or int4 (block 32: 16 bytes + a 4-byte scale per block).
    const expert = quant === 'none' ? 3 * I * H * 4 : 2 * I * (H / 32) * 20 + H * (I / 32) * 20;
    const read = cost.layerReadBytes ?? [];
    t.equal(read.length, cost.numLayers);
    for (let i = 0; i < cost.numLayers; i++) {
      t.ok(Math.abs((cost.layerBytes[i] as number) - (read[i] as number) - (1 - k / E) * E * expert) < 1e-6, `${quant} layer ${i}: reads ${read[i]} of ${cost.layerBytes[i]} held bytes`);
    }
    // One node holding everything: its stage time is the read bytes (plus the head), not the held.
    const plan = tryPlan(cost, [{ id: 'n', name: 'n', memory: 1e12, speed: 1 }]);
    const want = read.reduce((a, b) => a + b, 0) + cost.headCost;
    t.ok(plan !== null && Math.abs((plan.stages[0]?.time ?? 0) - want) < 1e-6, `${quant}: the stage's per-token cost is what a token reads (${plan?.stages[0]?.time} vs ${want})`);
  }
});

t.test('a dense model reads every weight; a batch reads the union of its experts', async (t) => {
  const cost = await costs(t, 'tiny-qwen3', 'none');
  t.same(cost.layerReadBytes, cost.layerBytes);
  const a3b = shapeToConfig(resolveShape({ preset: 'qwen3-30b-a3b-layers' }));
  t.equal(expertReadFraction(a3b), 8 / 128);
  t.ok(Math.abs(expertReadFraction(a3b, 8) - (1 - (120 / 128) ** 8)) < 1e-12, '8 rows: 1 - (1 - k/E)^8 of the experts');
  t.equal(expertReadFraction(shapeToConfig(resolveShape({ preset: 'tiny-qwen3' })), 8), 1);
});

t.test('mixtral int4: experts (w1/w3/w2) are counted as the int4 the engine builds', async (t) => {
  const cost = await costs(t, 'tiny-mixtral', 'int4');
  // Block 32: each row of K values is K/32 blocks of 16 packed bytes + a 4-byte scale.
  const int4 = (rows: number, cols: number): number => rows * (cols / 32) * 20;
  const H = 64;
  const I = 64;
  const E = 4;
  const attention = int4(64, H) + int4(32, H) + int4(32, H) + int4(H, 64);
  const want = attention + 2 * H * 4 + E * H * 4 + E * (2 * int4(I, H) + int4(H, I));
  t.same(cost.layerBytes, [want, want, want, want], `${want} bytes a layer (router and norms fp32)`);
});
