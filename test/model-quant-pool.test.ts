// int4 quantization on several threads (QuantPool) gives exactly the bytes of the single-threaded
// path, for fused matrices (q|k|v), row ranges (lm_head slices) and 16-bit checkpoints.
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { WeightReader } from '../src/model/onnx/weights.ts';
import { QuantPool, withQuantPool } from '../src/model/quant-pool.ts';
import { layerTensorNames, lmHeadName } from '../src/model/tensor-names.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

for (const dtype of ['f32', 'bf16'] as const) {
  t.test(`${dtype}: pooled int4 equals single-threaded int4 byte for byte`, async (t) => {
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
    const copy = (m: ReturnType<WeightReader['fusedInt4']>): [Buffer, Buffer] => [Buffer.from(m.packed), Buffer.from(new Uint8Array(m.scales.buffer, m.scales.byteOffset, m.scales.byteLength))];
    const single = jobs.map(([, names, range]) => copy(new WeightReader(ckpt).fusedInt4(names, range)));
    const pool = QuantPool.start(3);
    t.teardown(() => pool.close());
    t.ok(pool.size > 1 || os.availableParallelism() === 1, `pool of ${pool.size}`);
    const pooled = withQuantPool(pool, () => {
      const w = new WeightReader(ckpt);
      return jobs.map(([, names, range]) => copy(w.fusedInt4(names, range)));
    });
    jobs.forEach(([name], i) => {
      t.ok((pooled[i] as [Buffer, Buffer])[0].equals((single[i] as [Buffer, Buffer])[0]), `${name}: packed nibbles equal`);
      t.ok((pooled[i] as [Buffer, Buffer])[1].equals((single[i] as [Buffer, Buffer])[1]), `${name}: scales equal`);
    });
  });
}
