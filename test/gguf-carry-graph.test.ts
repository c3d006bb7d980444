// Issue 24: a K-quant / Q6_K / Q8_0 GGUF of a generated checkpoint, built as hearth's int4 graph,
// carries the file's blocks into MatMulNBits as they are: its logits equal the fp32 path's on the
// same file (every value decoded exactly) within fp32 rounding, where requantizing them to int4
// (the behaviour before, still HEARTH_GGUF_REQUANTIZE=1) is off by tenths of a logit.
// accuracy_level 0 (fp32 activations) so that only the weights are compared; accuracy_level 4,
// the serving default, quantizes activations to 8 bits as llama.cpp does (gguf-agreement.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { convertCheckpoint } from '../bench/llama-cpp/src/hf-to-gguf.ts';
import { resolveGgufModel } from '../src/cli/served-model.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { GGUF_MARKER, type GgufMarker } from '../src/gguf/index.ts';
import { Chain, maxAbsDiff, tokenStream } from './helpers/runtime-exact.ts';
import { modelCostsFromCheckpoint, stageWeightBytes } from '../src/cluster/model-costs.ts';
import { openCheckpoint } from '../src/model/checkpoint.ts';
import { buildShardGraph } from '../src/model/onnx/index.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-ggufcarry-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
const prevCache = process.env['HEARTH_SHARD_CACHE_DIR'];
process.env['HEARTH_SHARD_CACHE_DIR'] = path.join(work, 'shard-cache');
t.teardown(() => { if (prevCache === undefined) delete process.env['HEARTH_SHARD_CACHE_DIR']; else process.env['HEARTH_SHARD_CACHE_DIR'] = prevCache; });

async function logitsOf(t: Parameters<typeof Chain.open>[0], dir: string, quant: 'none' | 'int4', tokens: number[], ranges: [number, number][]): Promise<Float32Array> {
  const chain = await Chain.open(t, dir, ranges, quant, { accuracyLevel: 0 });
  const [res] = await chain.run([{ seq: 's', pos: 0, n: tokens.length, tokens: Int32Array.from(tokens), logitRows: tokens.length }]);
  await chain.close();
  return res?.logits as Float32Array;
}

// 256-wide rows, so that Q4_K_M really holds Q4_K and Q6_K (llama.cpp falls back to Q5_0/Q8_0 for
// narrower ones); qwen2 (tied, q/k/v biases) and llama (untied, q/k rows permuted in the file).
for (const [preset, quant] of [['tiny-qwen2', 'q4_k_m'], ['tiny-llama', 'q4_k_m'], ['tiny-qwen2', 'q8_0']] as const) {
  t.test(`${preset} ${quant}: carried blocks give the fp32 path's logits`, async (t) => {
    const dir = path.join(work, `${preset}-src`);
    if (!fs.existsSync(dir)) await generateCheckpoint(dir, { preset, seed: 3, hiddenSize: 256, intermediateSize: 512, numHeads: 4, numKvHeads: 2, headDim: 64, numLayers: 2, vocabSize: 512 });
    const file = path.join(work, `${preset}-${quant}.gguf`);
    convertCheckpoint(dir, file, quant);
    const view = await resolveGgufModel(file, path.join(work, 'state'));
    if (view === null) throw new Error('not resolved');
    const types = new Set((JSON.parse(fs.readFileSync(path.join(view, GGUF_MARKER), 'utf8')) as GgufMarker).tensors.map((x) => x.type));
    const want = quant === 'q8_0' ? ['Q8_0'] : ['Q4_K', 'Q6_K'];
    t.ok(want.every((x) => types.has(x)), `the file holds ${[...types].join(', ')}`);
    const tokens = tokenStream(12, 512, 5);
    const ref = await logitsOf(t, view, 'none', tokens, [[0, 2]]);
    const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (const ranges of [[[0, 2]], [[0, 1], [1, 2]]] as [number, number][][]) {
      const got = await logitsOf(t, view, 'int4', tokens, ranges);
      const diff = maxAbsDiff(got, ref);
      t.ok(diff <= 1e-4 * Math.max(1, scale), `int4 build over ${ranges.length} stage(s): max |Δlogit| ${diff.toExponential(2)} (logits up to ${scale.toFixed(2)})`);
    }
    // The planner counts the bytes as built (the file's formats, not int4 at the default block).
    const ckpt = openCheckpoint(view);
    try {
      const cost = modelCostsFromCheckpoint(ckpt, { quant: 'int4', kvTokens: 16 });
      for (const [s, e] of [[0, 2], [0, 1], [1, 2]] as const) {
        const g = buildShardGraph(ckpt, { start: s, end: e, quant: 'int4' }, { mapFile: () => 'ckpt0.safetensors' });
        t.equal(stageWeightBytes(cost, s, e), g.weightBytes + g.lookupBytes, `[${s}, ${e}): planner = built, ${g.weightBytes + g.lookupBytes} bytes`);
      }
    } finally {
      ckpt.close();
    }
  });
}
