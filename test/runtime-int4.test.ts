// int4 (MatMulNBits, block 32, quantized at load): the packing matches its documented layout, and
// on real and random checkpoints the logits stay close to fp32 with greedy choices mostly agreeing.
// The measured numbers are printed (t.comment); the asserted bounds are deliberately loose.
import fs from 'node:fs';
import ort from 'onnxruntime-node';
import t from 'tap';
import { DT, GraphBuilder, MS_DOMAIN } from '../src/model/onnx/graph.ts';
import { argmax } from '../src/model/reference.ts';
import { dequantizeInt4, quantizeInt4 } from '../src/model/quant-int4.ts';
import { Chain, maxAbsDiff, stories260kDir, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

t.test('quantizeInt4: MatMulNBits layout, bounded error, exact block extremes, padded last block', async (t) => {
  const rows = 5;
  const cols = 70; // not a multiple of 32: the last block is zero-padded
  const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
  const m = quantizeInt4(w, rows, cols);
  t.equal(m.blocks, 3);
  t.equal(m.packed.length, rows * 3 * 16);
  t.equal(m.scales.length, rows * 3);
  const back = dequantizeInt4(m);
  // Round-to-nearest from the max-magnitude scale (largest value to -8, as MLAS and llama.cpp's Q4_0
  // do), then a least-squares refit of each block (refitBlock): every block's squared error is at
  // most RTN's, and every value stays within one step of its weight.
  let worst = 0;
  let noWorse = true;
  let better = 0;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < m.blocks; b++) {
      const scale = m.scales[r * m.blocks + b] as number;
      let big = b * 32;
      for (let k = b * 32; k < Math.min(cols, b * 32 + 32); k++) if (Math.abs(w[r * cols + k] as number) > Math.abs(w[r * cols + big] as number)) big = k;
      const rtn = (w[r * cols + big] as number) / -8;
      let eRtn = 0;
      let eNow = 0;
      for (let k = b * 32; k < Math.min(cols, b * 32 + 32); k++) {
        const i = r * cols + k;
        const x = w[i] as number;
        worst = Math.max(worst, Math.abs(x - (back[i] as number)) / Math.abs(scale));
        eRtn += (x - Math.min(7, Math.max(-8, Math.round(x / rtn))) * rtn) ** 2;
        eNow += (x - (back[i] as number)) ** 2;
      }
      if (eNow > eRtn * (1 + 1e-6)) noWorse = false;
      if (eNow < eRtn * (1 - 1e-6)) better++;
    }
  }
  t.ok(worst <= 1 + 1e-6, `max error ${worst.toFixed(3)} steps`);
  t.ok(noWorse, 'no block has a larger squared error than round-to-nearest');
  t.ok(better > 0, `the refit lowers it in ${better} of ${rows * m.blocks} blocks`);
  // Element 0 of row 0 sits in the low nibble of byte 0; element 1 in its high nibble.
  const b0 = m.packed[0] as number;
  const s0 = m.scales[0] as number;
  t.equal(((b0 & 15) - 8) * s0, back[0]);
  t.equal(((b0 >> 4) - 8) * s0, back[1]);
});

t.test('MatMulNBits reads quantizeInt4 output as the dequantized matrix (accuracy_level 0)', async (t) => {
  const n = 48;
  const k = 96;
  const w = Float32Array.from({ length: n * k }, (_, i) => Math.cos(i * 0.37) * (1 + (i % 5)));
  const m = quantizeInt4(w, n, k);
  const deq = dequantizeInt4(m);
  const g = new GraphBuilder();
  const x = g.input('x', DT.float, [2, k]);
  const b = g.init('b', DT.uint8, [n, m.blocks, 16], m.packed);
  const s = g.init('s', DT.float, [n * m.blocks], m.scales);
  g.node('MatMulNBits', [x, b, s], ['y'], { K: k, N: n, bits: 4, block_size: 32, accuracy_level: 0 }, MS_DOMAIN);
  g.output('y', DT.float, [2, n]);
  const { model, externalData } = g.finish('mnb');
  const session = await ort.InferenceSession.create(model, { externalData });
  t.teardown(() => session.release());
  const xs = Float32Array.from({ length: 2 * k }, (_, i) => Math.sin(i * 0.11));
  const y = (await session.run({ x: new ort.Tensor('float32', xs, [2, k]) }))['y']?.data as Float32Array;
  let worst = 0;
  for (let r = 0; r < 2; r++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let i = 0; i < k; i++) acc += (xs[r * k + i] as number) * (deq[j * k + i] as number);
      worst = Math.max(worst, Math.abs(acc - (y[r * n + j] as number)));
    }
  }
  t.ok(worst < 1e-3, `max |ORT - x·dequant(W)ᵀ| = ${worst.toExponential(2)}`);
});

/** Greedy 64 tokens with fp32, then teacher-force them through int4; compare each position. */
async function compare(t: Tap, dir: string, prompt: number[], layers: number, headSliceRows?: number): Promise<{ agree: number; maxDev: number; range: number; relRms: number }> {
  const f32 = await Chain.open(t, dir, [[0, layers]]);
  const q4 = await Chain.open(t, dir, [[0, Math.ceil(layers / 2)], [Math.ceil(layers / 2), layers]], 'int4', headSliceRows ? { headSliceRows } : {});
  const seq = [...prompt];
  const ref: Float32Array[] = [];
  let [r] = await f32.run([{ seq: 's', pos: 0, n: prompt.length, tokens: Int32Array.from(prompt) }]);
  while (seq.length < prompt.length + 64) {
    const l = r?.logits as Float32Array;
    ref.push(l.slice());
    seq.push(argmax(l));
    [r] = await f32.run([{ seq: 's', pos: seq.length - 1, n: 1, tokens: Int32Array.of(seq[seq.length - 1] as number) }]);
  }
  let agree = 0;
  let maxDev = 0;
  let range = 0;
  let errSq = 0;
  let refSq = 0;
  [r] = await q4.run([{ seq: 's', pos: 0, n: prompt.length, tokens: Int32Array.from(prompt) }]);
  for (let i = 0; i < ref.length; i++) {
    const got = r?.logits as Float32Array;
    const want = ref[i] as Float32Array;
    if (argmax(got) === argmax(want)) agree++;
    for (let j = 0; j < want.length; j++) {
      maxDev = Math.max(maxDev, Math.abs((got[j] as number) - (want[j] as number)));
      range = Math.max(range, Math.abs(want[j] as number));
      errSq += ((got[j] as number) - (want[j] as number)) ** 2;
      refSq += (want[j] as number) ** 2;
    }
    const pos = prompt.length + i;
    if (i + 1 < ref.length) [r] = await q4.run([{ seq: 's', pos, n: 1, tokens: Int32Array.of(seq[pos] as number) }]);
  }
  return { agree: agree / ref.length, maxDev, range, relRms: Math.sqrt(errSq / refSq) };
}

interface Tap {
  teardown(fn: () => unknown): void;
}

const noStories = fs.existsSync(`${stories260kDir}/config.json`) ? false : 'stories260k is absent (../shared/models)';

t.test('int4 vs fp32 on stories260k (real weights): greedy agreement and logit deviation', { skip: noStories }, async (t) => {
  const r = await compare(t, stories260kDir, [1, 403, 407, 261, 378], 5);
  t.comment(`stories260k int4: greedy agreement ${(r.agree * 100).toFixed(1)}% over 64 tokens, max |logit diff| ${r.maxDev.toFixed(3)} (max |logit| ${r.range.toFixed(2)}), relative RMS error ${r.relRms.toFixed(4)}`);
  t.ok(r.agree >= 0.7, 'greedy choices mostly agree');
  t.ok(r.relRms < 0.3, 'RMS logit error is a small fraction of the logits');
});

t.test('int4 vs fp32 on a random tiny-qwen2: logits stay close', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const r = await compare(t, dir, tokenStream(12, 151936, 5), 4, 60000); // int4 head in 3 slices
  t.comment(`tiny-qwen2 int4: greedy agreement ${(r.agree * 100).toFixed(1)}% over 64 tokens, max |logit diff| ${r.maxDev.toFixed(4)} (max |logit| ${r.range.toFixed(3)}), relative RMS error ${r.relRms.toFixed(4)}`);
  // Random weights give nearly flat logits, so near-ties flip easily; chance would be ~0%.
  t.ok(r.agree >= 0.2, 'greedy choices agree far above chance');
  t.ok(r.relRms < 0.5, 'RMS logit error is a fraction of the logits');
});

t.test('int4 graphs: fused and GroupQueryAttention paths (packed QKV / q-k norm) equal the plain-op path on the same quantized weights', async (t) => {
  // With fp32 activations (accuracy_level 0) every attention path sees identical MatMulNBits
  // results, so any difference is a graph-structure bug rather than quantization noise.
  for (const [preset, kind] of [['tiny-qwen2', 'fused'], ['tiny-qwen3', 'fused'], ['tiny-qwen2', 'gqa']] as const) {
    const dir = await tinyCheckpoint(t, preset);
    const fast = await Chain.open(t, dir, [[0, 2], [2, 4]], 'int4', { accuracyLevel: 0, attention: kind });
    const plain = await Chain.open(t, dir, [[0, 4]], 'int4', { accuracyLevel: 0, attention: 'plain' });
    t.equal(fast.engines[0]?.info.attention, kind);
    const a = tokenStream(20, 151936, 61);
    const b = tokenStream(12, 151936, 62);
    let worst = 0;
    const both = async (items: Parameters<Chain['run']>[0]): Promise<void> => {
      const [x, y] = [await fast.run(items), await plain.run(items)];
      x.forEach((r, i) => (worst = Math.max(worst, maxAbsDiff(r.logits ?? [], y[i]?.logits ?? []))));
    };
    await both([{ seq: 'A', pos: 0, n: 12, tokens: Int32Array.from(a.slice(0, 12)) }]);
    await both([{ seq: 'B', pos: 0, n: 4, tokens: Int32Array.from(b.slice(0, 4)) }]);
    for (let i = 0; i < 8; i++) {
      await both([
        { seq: 'A', pos: 12 + i, n: 1, tokens: Int32Array.of(a[12 + i] as number) },
        { seq: 'B', pos: 4 + i, n: 1, tokens: Int32Array.of(b[4 + i] as number) },
      ]);
    }
    t.ok(worst <= 1e-4, `${preset}: max |${kind} - plain| ${worst.toExponential(2)}`);
  }
});
