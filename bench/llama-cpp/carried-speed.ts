// Issue 24: memory and decode speed of a GGUF's int4 build with its blocks carried (the default)
// against the old requantize (HEARTH_GGUF_REQUANTIZE=1: int4 at HEARTH_INT4_BLOCK, default 128)
// and fp32 (--quant none), on one generated checkpoint with 256-multiple rows (so Q4_K_M holds real
// Q4_K/Q6_K), one thread, interleaved rounds; the machine is shared, so read ratios within a run.
//   node --import tsx carried-speed.ts [--hidden 1024] [--layers 4] [--rounds 2] [--decode 48]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertCheckpoint } from './src/hf-to-gguf.ts';
import { typeName, type GgmlType } from './src/ggml-quant.ts';
import { resolveGgufModel } from '../../src/cli/served-model.ts';
import { generateCheckpoint } from '../../src/model/generate-checkpoint.ts';
import { createShardEngine } from '../../src/runtime/index.ts';

const { values } = parseArgs({ options: { hidden: { type: 'string', default: '1024' }, layers: { type: 'string', default: '4' }, rounds: { type: 'string', default: '2' }, decode: { type: 'string', default: '48' }, quants: { type: 'string', default: 'q4_0,q4_k_m,q8_0' } } });
const H = Number(values.hidden);
const L = Number(values.layers);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-carryspeed-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
process.env['HEARTH_SHARD_CACHE_DIR'] = path.join(work, 'shards');
const src = path.join(work, 'src');
await generateCheckpoint(src, { preset: 'tiny-qwen2', seed: 1, hiddenSize: H, intermediateSize: Math.round((H * 2.75) / 256) * 256, numHeads: H / 64, numKvHeads: Math.max(1, H / 256), headDim: 64, numLayers: L, vocabSize: 8192 });

async function measure(dir: string, quant: 'none' | 'int4'): Promise<{ weightMB: number; tokS: number }> {
  const e = await createShardEngine(dir, { start: 0, end: L, quant, threads: 1, provider: 'cpu' });
  const weightMB = e.weightBytes() / 2 ** 20;
  let toks = Int32Array.from({ length: 32 }, (_, i) => 100 + i);
  let pos = 0;
  const n = Number(values.decode);
  let t0 = 0;
  for (let i = 0; i <= n; i++) {
    if (i === 1) t0 = performance.now(); // the prompt's step is not decode
    await e.run([{ seq: 's', pos, n: toks.length, tokens: toks }]);
    pos += toks.length;
    toks = Int32Array.of(7 + i);
  }
  const tokS = n / ((performance.now() - t0) / 1000);
  await e.close();
  return { weightMB, tokS };
}

console.log(`| file | tensors | file MB | build | weights MB | decode tok/s (best of ${values.rounds}) |\n|---|---|---|---|---|---|`);
for (const q of values.quants.split(',')) {
  const file = path.join(work, `${q}.gguf`);
  const conv = convertCheckpoint(src, file, q as 'q4_0');
  const view = (await resolveGgufModel(file, path.join(work, 'state'))) as string;
  const types = Object.entries(conv.types).map(([t, k]) => `${k} ${typeName(Number(t) as GgmlType)}`).join(', ');
  const best = new Map<string, { weightMB: number; tokS: number }>();
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const build of ['carried', 'requantized', 'fp32'] as const) {
      if (build === 'requantized') process.env['HEARTH_GGUF_REQUANTIZE'] = '1';
      const m = await measure(view, build === 'fp32' ? 'none' : 'int4');
      delete process.env['HEARTH_GGUF_REQUANTIZE'];
      const prev = best.get(build);
      if (prev === undefined || m.tokS > prev.tokS) best.set(build, m);
    }
  }
  for (const [build, m] of best) console.log(`| ${q} | ${types} | ${(fs.statSync(file).size / 2 ** 20).toFixed(1)} | ${build} | ${m.weightMB.toFixed(1)} | ${m.tokS.toFixed(1)} |`);
}
process.exit(0);
