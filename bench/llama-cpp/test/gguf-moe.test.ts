// GGUF writing for mixture-of-experts checkpoints (issue 23 item 4): qwen3_moe as llama.cpp's
// qwen3moe, mixtral as llama with experts (router ffn_gate_inp, ffn_{gate,up,down}_exps stacked
// [E][rows, cols]), and llama.cpp itself greedy-decoding an f32 GGUF of each to exactly the tokens
// of hearth's reference forward pass: the weights, the expert stacking and both routings agree.
// Run: npm test (in this folder).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Token } from 'node-llama-cpp';
import { generateCheckpoint, openCheckpoint, referenceGreedy } from '../../../src/model/index.ts';
import { readGguf } from '../src/gguf-file.ts';
import { convertCheckpoint } from '../src/hf-to-gguf.ts';

const PROMPT = [9707, 11, 1879, 0, 3555, 374, 279, 6722, 315];

for (const [preset, arch, experts, used] of [['tiny-qwen3-moe', 'qwen3moe', 8, 2], ['tiny-mixtral', 'llama', 4, 2]] as const) {
  test(`${preset}: ${arch} GGUF with stacked experts; llama.cpp greedy equals hearth's reference`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gguf-${preset}-`));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    await generateCheckpoint(dir, { preset, seed: 3 });
    const out = path.join(dir, 'm.gguf');
    convertCheckpoint(dir, out, 'f32');
    const g = readGguf(out);
    assert.equal(g.meta.get('general.architecture'), arch);
    assert.equal(g.meta.get(`${arch}.expert_count`), experts);
    assert.equal(g.meta.get(`${arch}.expert_used_count`), used);
    const byName = new Map(g.tensors.map((x) => [x.name, x]));
    assert.deepEqual(byName.get('blk.1.ffn_gate_inp.weight')?.dims, [64, experts]);
    const inter = preset === 'tiny-mixtral' ? 64 : 32;
    assert.deepEqual(byName.get('blk.1.ffn_up_exps.weight')?.dims, [64, inter, experts]);
    assert.deepEqual(byName.get('blk.1.ffn_down_exps.weight')?.dims, [inter, 64, experts]);
    assert.equal(byName.has('blk.1.ffn_up.weight'), false, 'no dense MLP');

    const ckpt = openCheckpoint(dir);
    const want = referenceGreedy(ckpt, PROMPT, 16, []);
    ckpt.close();
    let llamaCpp: typeof import('node-llama-cpp');
    try {
      llamaCpp = await import('node-llama-cpp');
    } catch {
      t.skip('node-llama-cpp is not installed (npm install in this folder)');
      return;
    }
    const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', maxThreads: 1, logLevel: llamaCpp.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: out });
    const ctx = await model.createContext({ contextSize: 64, threads: 1 });
    const got: number[] = [];
    for await (const tok of ctx.getSequence().evaluate(PROMPT as Token[], { temperature: 0 })) {
      got.push(tok as number);
      if (got.length === want.length) break;
    }
    await ctx.dispose();
    await model.dispose();
    assert.deepEqual(got, want);
  });
}
