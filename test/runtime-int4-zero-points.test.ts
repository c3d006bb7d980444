// Asymmetric int4 (uint4 zero points per block, HEARTH_INT4_ZERO_POINTS=1 / --int4-zero-points):
// the quantizer's result is never worse than min/max rounding; onnxruntime's MatMulNBits and
// GatherBlockQuantized read its bytes + zero points as exactly the matrix dequantizeInt4 gives; and
// a whole model built with zero points neither reuses a symmetric shard's cache entry nor the other
// way round.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import t from 'tap';
import { modelCostsFromCheckpoint, stageWeightBytes } from '../src/cluster/model-costs.ts';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { buildShardGraph } from '../src/model/onnx/index.ts';
import { DT, GraphBuilder, MS_DOMAIN } from '../src/model/onnx/graph.ts';
import { dequantizeInt4, int4MatrixBytes, quantizeInt4 } from '../src/model/quant-int4.ts';
import { allocInt8, dequantizeInt8, quantizeRowsInt8, raggedBits } from '../src/model/quant-int8.ts';
import { SafetensorsWriter } from '../src/model/safetensors.ts';
import { allTensorShapes } from '../src/model/tensor-names.ts';
import { Chain, exactRun, maxAbsDiff, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

/** Skewed weights (a per-block offset), where a zero point pays: symmetric rounding wastes half its range. */
function skewed(rows: number, cols: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)) + 3 * Math.cos(Math.floor(i / 32) * 0.9));
}

t.test('quantizeInt4 with zero points: layout, never worse than min/max rounding, better than symmetric on skewed blocks', async (t) => {
  const rows = 5;
  const cols = 100; // 4 blocks of 32, the last padded: zero points [5, 2], both nibbles used
  const w = skewed(rows, cols);
  const m = quantizeInt4(w, rows, cols, 32, true);
  t.equal(m.zeros?.length, rows * 2, 'one nibble per block, two blocks a byte');
  const back = dequantizeInt4(m);
  const sym = dequantizeInt4(quantizeInt4(w, rows, cols, 32));
  let eAsym = 0;
  let eSym = 0;
  let worseThanMinMax = 0;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < m.blocks; b++) {
      const k0 = r * cols + b * 32;
      const k1 = Math.min((r + 1) * cols, k0 + 32);
      let mn = 0;
      let mx = 0;
      for (let k = k0; k < k1; k++) {
        mn = Math.min(mn, w[k] as number);
        mx = Math.max(mx, w[k] as number);
      }
      const s = (mx - mn) / 15;
      const z = Math.min(15, Math.max(0, Math.round(-mn / s)));
      let eMinMax = 0;
      let eNow = 0;
      for (let k = k0; k < k1; k++) {
        const x = w[k] as number;
        eMinMax += (x - (Math.min(15, Math.max(0, Math.round(x / s) + z)) - z) * s) ** 2;
        eNow += (x - (back[k] as number)) ** 2;
        eSym += (x - (sym[k] as number)) ** 2;
      }
      eAsym += eNow;
      if (eNow > eMinMax * (1 + 1e-6)) worseThanMinMax++;
    }
  }
  t.equal(worseThanMinMax, 0, 'no block has a larger squared error than min/max rounding');
  t.ok(eAsym < eSym * 0.8, `squared error ${eAsym.toFixed(3)} with zero points vs ${eSym.toFixed(3)} symmetric`);
  // Block 1 of row 0: its zero point is the high nibble of zeros[0]; value 32 is the low nibble of its first byte.
  const z1 = (m.zeros?.[0] as number) >> 4;
  t.equal(Math.fround((((m.packed[16] as number) & 15) - z1) * (m.scales[1] as number)), back[32]);
  // Padding past the row's end dequantizes to 0 (the padded nibbles hold the block's zero point).
  const z3 = (m.zeros?.[1] as number) >> 4;
  const lastByte = m.packed[(0 * 4 + 3) * 16 + 15] as number;
  t.same([lastByte & 15, lastByte >> 4], [z3, z3]);
  t.equal(int4MatrixBytes(rows, cols, 32, true), m.packed.length + m.scales.byteLength + (m.zeros?.length ?? 0), 'the planner counts the bytes built');
});

t.test('MatMulNBits and GatherBlockQuantized read the zero points as dequantizeInt4 does', async (t) => {
  for (const block of [32, 64]) {
    const n = 40;
    const k = 192; // 6 blocks at 32, 3 at 64 (an odd count: the last zero-point byte is half used)
    const w = skewed(n, k);
    const m = quantizeInt4(w, n, k, block, true);
    const deq = dequantizeInt4(m);
    const zc = Math.ceil(m.blocks / 2);
    const g = new GraphBuilder();
    const x = g.input('x', DT.float, [2, k]);
    const ids = g.input('ids', DT.int32, [1, 3]);
    const table = g.init('table', DT.uint8, [n, (m.blocks * block) / 2], m.packed);
    const scales = g.init('scales', DT.float, [n, m.blocks], m.scales);
    const zeros = g.init('zeros', DT.uint8, [n, zc], m.zeros as Uint8Array);
    g.node('GatherBlockQuantized', [table, ids, scales, zeros], ['rows'], { gather_axis: 0, quantize_axis: 1, block_size: block, bits: 4 }, MS_DOMAIN);
    g.output('rows', DT.float, [1, 3, k]);
    const b = g.view('b', table, DT.uint8, [n, m.blocks, block / 2], 0, m.packed.length);
    const s = g.view('s', scales, DT.float, [n * m.blocks], 0, m.scales.byteLength);
    g.node('MatMulNBits', [x, b, s, zeros], ['y'], { K: k, N: n, bits: 4, block_size: block, accuracy_level: 0 }, MS_DOMAIN);
    g.output('y', DT.float, [2, n]);
    const { model, externalData } = g.finish('zp');
    const session = await ort.InferenceSession.create(model, { externalData });
    t.teardown(() => session.release());
    const xs = Float32Array.from({ length: 2 * k }, (_, i) => Math.sin(i * 0.11));
    const want = [3, 0, 39];
    const out = await session.run({ x: new ort.Tensor('float32', xs, [2, k]), ids: new ort.Tensor('int32', Int32Array.from(want), [1, 3]) });
    const rows = out['rows']?.data as Float32Array;
    want.forEach((id, i) => t.same(Array.from(rows.subarray(i * k, (i + 1) * k)), Array.from(deq.subarray(id * k, (id + 1) * k)), `block ${block}: row ${id} is the dequantized row`));
    const y = out['y']?.data as Float32Array;
    let worst = 0;
    let range = 0;
    for (let r = 0; r < 2; r++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let i = 0; i < k; i++) acc += (xs[r * k + i] as number) * (deq[j * k + i] as number);
        worst = Math.max(worst, Math.abs(acc - (y[r * n + j] as number)));
        range = Math.max(range, Math.abs(acc));
      }
    }
    t.ok(worst < 1e-4 * Math.max(1, range), `block ${block}: max |ORT - x·dequant(W)ᵀ| = ${worst.toExponential(2)} (|y| up to ${range.toFixed(1)})`);
  }
});

t.test('a model built with zero points (layers, 4-bit table and sliced tied head) is never served from a symmetric cache entry, nor the reverse', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-zp-cache-'));
  t.teardown(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
  const tokens = tokenStream(9, 151936, 7);
  const logits = async (opts: { int4ZeroPoints: boolean; vocabBits: 4 | 8; cacheDir: string | null }): Promise<Float32Array> => {
    const c = await Chain.open(t, dir, [[0, 2], [2, 4]], 'int4', { ...opts, accuracyLevel: 0, int4Block: 32, headSliceRows: 60000 });
    const [r] = await c.run([{ seq: 's', pos: 0, n: tokens.length, tokens: Int32Array.from(tokens) }]);
    await c.close();
    return (r?.logits as Float32Array).slice();
  };
  // 4-bit vocabulary: the embedding table and the tied head (in 3 slices: views of the table's zero points) take them too.
  const symCached = await logits({ int4ZeroPoints: false, vocabBits: 4, cacheDir });
  const asymCached = await logits({ int4ZeroPoints: true, vocabBits: 4, cacheDir });
  const asymFresh = await logits({ int4ZeroPoints: true, vocabBits: 4, cacheDir: null });
  const symAgain = await logits({ int4ZeroPoints: false, vocabBits: 4, cacheDir });
  t.ok(maxAbsDiff(symCached, asymFresh) > 1e-3, `zero points change the logits (${maxAbsDiff(symCached, asymFresh).toExponential(2)})`);
  t.equal(maxAbsDiff(asymCached, asymFresh), 0, 'the zero-point build after a symmetric one in the same cache is its own');
  t.equal(maxAbsDiff(symAgain, symCached), 0, 'and the symmetric entry is still the symmetric one');
});

t.test('the planner counts the zero points the builder writes', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-zp-acct-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const cases = [
    { preset: 'tiny-qwen3' as const, block: 32, vocabBits: 4 as const }, // tied: head slices are views of the table's zero points
    { preset: 'tiny-llama' as const, block: 32, vocabBits: 4 as const }, // untied 4-bit head: its own zero points
    { preset: 'tiny-qwen3' as const, block: 32, vocabBits: 8 as const }, // 8-bit vocabulary: symmetric, layers with zero points
    { preset: 'tiny-llama' as const, block: 64, vocabBits: 8 as const }, // K = 64: one block a row, a half-used zero-point byte
  ];
  for (const [i, c] of cases.entries()) {
    const dir = path.join(root, `${c.preset}-${i}`);
    await generateCheckpoint(dir, { preset: c.preset, numLayers: 4, vocabSize: 1000, maxPositions: 256, tokenizer: false, dtype: 'bf16' });
    const ckpt = openCheckpoint(dir);
    const sym = modelCostsFromCheckpoint(ckpt, { quant: 'int4', kvTokens: 64, int4Block: c.block, vocabBits: c.vocabBits, int4ZeroPoints: false });
    const cost = modelCostsFromCheckpoint(ckpt, { quant: 'int4', kvTokens: 64, int4Block: c.block, vocabBits: c.vocabBits, int4ZeroPoints: true });
    t.ok(stageWeightBytes(cost, 0, 4) > stageWeightBytes(sym, 0, 4), `${c.preset}: zero points cost bytes`);
    for (const [s, e] of [[0, 4], [0, 2], [2, 4]] as const) {
      const g = buildShardGraph(ckpt, { start: s, end: e, quant: 'int4' }, { int4Block: c.block, vocabBits: c.vocabBits, int4ZeroPoints: true, mapFile: () => 'ckpt0.safetensors' });
      t.equal(stageWeightBytes(cost, s, e), g.weightBytes + g.lookupBytes, `${c.preset} block ${c.block} vocab ${c.vocabBits}-bit [${s}, ${e}): planner = built`);
    }
    ckpt.close();
  }
});

/** A copy of `dir` whose matrices hold the values the int4 engine with zero points builds from them, dequantized. */
function dequantizedCopy(dir: string, block: number): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-zp-deq-'));
  for (const f of ['config.json', 'generation_config.json']) if (fs.existsSync(path.join(dir, f))) fs.copyFileSync(path.join(dir, f), path.join(out, f));
  const ckpt = openCheckpoint(dir);
  const specs = allTensorShapes(ckpt.config);
  const w = new SafetensorsWriter(path.join(out, 'model.safetensors'), specs.map(([name, shape]) => ({ name, dtype: 'F32' as const, shape })));
  for (const [name, shape] of specs) {
    const data = ckpt.read(name);
    if (shape.length !== 2) {
      w.write(name, data);
      continue;
    }
    const [rows, cols] = shape as [number, number];
    if (raggedBits(cols) === 8) {
      const m = allocInt8(rows, cols, block);
      quantizeRowsInt8(data, rows, m, 0);
      w.write(name, dequantizeInt8(m));
    } else w.write(name, dequantizeInt4(quantizeInt4(data, rows, cols, block, true)));
  }
  w.close();
  ckpt.close();
  return out;
}

for (const [preset, block] of [['tiny-qwen2', 32], ['tiny-llama', 64]] as const) {
  // tiny-qwen2: tied head in 3 slices (views of the table's zero points), q/k/v biases after the
  // zero points; tiny-llama: untied 4-bit head, block 64 (down_proj's K = 160: a padded last block,
  // an odd block count, the even-row padding of blocks over 32).
  t.test(`${preset} int4 with zero points, block ${block}: equals the reference over its dequantized weights`, async (t) => {
    const dir = await tinyCheckpoint(t, preset);
    const deq = dequantizedCopy(dir, block);
    t.teardown(() => fs.rmSync(deq, { recursive: true, force: true }));
    const a = tokenStream(14, 151936, 71);
    const b = tokenStream(11, 151936, 72);
    const refA = reference(deq, a);
    const refB = reference(deq, b);
    for (const split of [[[0, 4]], [[0, 2], [2, 4]]] as const) {
      const chain = await Chain.open(t, dir, split, 'int4', { accuracyLevel: 0, int4Block: block, vocabBits: 4, int4ZeroPoints: true, headSliceRows: 60000, cacheDir: null });
      const r = await exactRun(chain, { a, aPrompt: 8, b, bPrompt: 5, chunk: 3 }, refA, refB);
      t.ok(r.maxDiff <= 1e-4, `split ${JSON.stringify(split)}: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
      await chain.close();
    }
  });
}
