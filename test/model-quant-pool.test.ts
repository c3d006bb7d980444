// int4 quantization: the fast quantizeRowsInt4 gives exactly the bytes of the plain definition
// (Math.round, round half up, then the least-squares refit) including exact ties and padded last blocks; on several threads
// (QuantPool) it gives exactly the bytes of the single-threaded path, for fused matrices (q|k|v),
// row ranges (lm_head slices) and 16-bit checkpoints.
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { WeightReader } from '../src/model/onnx/weights.ts';
import { QuantPool, withQuantPool } from '../src/model/quant-pool.ts';
import { allocInt4, quantizeRowsInt4, type Int4Matrix } from '../src/model/quant-int4.ts';
import { layerTensorNames, lmHeadName } from '../src/model/tensor-names.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The definition: largest-magnitude value → −8, q = clamp(Math.round(v / scale) + 8, 0, 15), refitted. */
function plainInt4(src: Float32Array, n: number, dst: Int4Matrix): void {
  const { cols, blocks, packed, scales } = dst;
  const q = new Uint8Array(32);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = b * 32;
      const k1 = Math.min(cols, k0 + 32);
      let amax = 0;
      let vmax = 0;
      for (let k = k0; k < k1; k++) {
        const v = src[r * cols + k] as number;
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          vmax = v;
        }
      }
      const scale = vmax / -8;
      const inv = scale === 0 ? 0 : 1 / scale;
      q.fill(8);
      for (let k = k0; k < k1; k++) q[k - k0] = Math.min(15, Math.max(0, Math.round((src[r * cols + k] as number) * inv) + 8));
      scales[r * blocks + b] = scale;
      // The least-squares refit: s1 = Σx·q / Σq² for these q; q' = round(x / s1) in [-8, 7], s2 likewise;
      // keep (q', s2) when its (Σx·q')² / Σq'² is larger (its squared error smaller).
      let num = 0;
      let den = 0;
      for (let k = k0; k < k1; k++) {
        num += (src[r * cols + k] as number) * ((q[k - k0] as number) - 8);
        den += ((q[k - k0] as number) - 8) ** 2;
      }
      if (den > 0) {
        const s1 = num / den;
        const q2 = new Uint8Array(32).fill(8);
        let num2 = 0;
        let den2 = 0;
        for (let k = k0; k < k1; k++) {
          const x = src[r * cols + k] as number;
          const v = Math.min(7, Math.max(-8, Math.round(x * (1 / s1))));
          q2[k - k0] = v + 8;
          num2 += x * v;
          den2 += v * v;
        }
        scales[r * blocks + b] = s1;
        if (den2 > 0 && (num2 * num2) / den2 > (num * num) / den) {
          scales[r * blocks + b] = num2 / den2;
          q.set(q2);
        }
      }
      for (let j = 0; j < 16; j++) packed[(r * blocks + b) * 16 + j] = (q[2 * j] as number) | ((q[2 * j + 1] as number) << 4);
    }
  }
}

t.test('quantizeRowsInt4 equals the plain Math.round definition bit for bit', async (t) => {
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (const cols of [64, 70, 896, 33]) {
    const rows = 97;
    const src = new Float32Array(rows * cols);
    for (let i = 0; i < src.length; i++) {
      const kind = i % 5;
      // Gaussian-ish weights, exact half-step ties (scale 1 when the block's extreme is -8),
      // zeros (an all-zero block has scale 0) and wide values.
      src[i] = kind === 0 ? (Math.floor(rnd() * 33) - 16) / 2 : kind === 1 ? 0 : (rnd() + rnd() + rnd() - 1.5) * (kind === 4 ? 100 : 0.02);
    }
    for (let r = 0; r < rows; r += 3) src[r * cols] = -8; // pins scale to exactly 1 on those blocks
    for (let k = 0; k < cols; k++) src[5 * cols + k] = 0;
    const a = allocInt4(rows, cols);
    const b = allocInt4(rows, cols);
    quantizeRowsInt4(src, rows, a, 0);
    plainInt4(src, rows, b);
    t.ok(Buffer.from(a.packed).equals(Buffer.from(b.packed)), `cols ${cols}: nibbles equal`);
    t.ok(Buffer.from(a.scales.buffer).equals(Buffer.from(b.scales.buffer)), `cols ${cols}: scales equal`);
  }
});

for (const [dtype, zp] of [['f32', false], ['bf16', false], ['bf16', true]] as const) {
  // zp: asymmetric int4, whose zero points two blocks share a byte of (HEARTH_INT4_ZERO_POINTS).
  t.test(`${dtype}${zp ? ', zero points' : ''}: pooled int4 equals single-threaded int4 byte for byte`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-quant-pool-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    await generateCheckpoint(dir, { preset: 'tiny-qwen2', tokenizer: false, dtype });
    const ckpt = openCheckpoint(dir);
    t.teardown(() => ckpt.close());
    const n = layerTensorNames(1);
    const vocab = ckpt.config.vocabSize;
    const jobs: [string, readonly string[], (readonly [number, number])?][] = [
      ['qkv', [n.q, n.k, n.v]],
      ['gate_up', [n.gate, n.up]],
      ['lm_head slice', [lmHeadName(ckpt.config)], [1000, vocab - 7]],
    ];
    const copy = (m: ReturnType<WeightReader['fusedInt4']>): [Buffer, Buffer, Buffer] => [
      Buffer.from(m.packed),
      Buffer.from(new Uint8Array(m.scales.buffer, m.scales.byteOffset, m.scales.byteLength)),
      Buffer.from(m.zeros ?? new Uint8Array(0)),
    ];
    const single = jobs.map(([, names, range]) => copy(new WeightReader(ckpt).fusedInt4(names, range, 32, zp)));
    const pool = QuantPool.start(3);
    t.teardown(() => pool.close());
    t.ok(pool.size > 1 || os.availableParallelism() === 1, `pool of ${pool.size}`);
    const pooled = withQuantPool(pool, () => {
      const w = new WeightReader(ckpt);
      return jobs.map(([, names, range]) => copy(w.fusedInt4(names, range, 32, zp)));
    });
    jobs.forEach(([name], i) => {
      t.ok((pooled[i] as [Buffer, Buffer, Buffer])[0].equals((single[i] as [Buffer, Buffer, Buffer])[0]), `${name}: packed nibbles equal`);
      t.ok((pooled[i] as [Buffer, Buffer, Buffer])[1].equals((single[i] as [Buffer, Buffer, Buffer])[1]), `${name}: scales equal`);
      if (zp) t.ok((pooled[i] as [Buffer, Buffer, Buffer])[2].length > 0 && (pooled[i] as [Buffer, Buffer, Buffer])[2].equals((single[i] as [Buffer, Buffer, Buffer])[2]), `${name}: zero points equal`);
    });
  });
}
