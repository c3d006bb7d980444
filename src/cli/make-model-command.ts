import { parseFlags as parseArgs } from './flags.ts';
import { checkpointPlan, defaultShardCount, generateCheckpoint, PRESETS, type GenerateOptions } from '../model/index.ts';

export const usage = `hearth make-model DIR [--preset ${Object.keys(PRESETS).join('|')}] [--seed N] [--dtype f32|f16|bf16] [--shards N] [--dry-run]
Writes a deterministic random checkpoint (a real Hugging Face folder) for tests, demos and benchmarks.
The llama3.2-3b / llama3.1-8b / qwen2.5-7b presets carry those models' real configs (random weights;
default dtype bf16, shards of at most 5 GB with model.safetensors.index.json, as the Hub has them).
tiny-qwen3-moe / tiny-mixtral are mixture-of-experts test models; qwen3-30b-a3b-layers is Qwen3-30B-A3B's
layer shape (128 experts, top-8) with 4 of its 48 layers, for benchmarks (bf16).
The tokenizer is Qwen3's (with its chat template), cut to the model's vocab when that is smaller
(specials move to the top ids). Weights are written in 16 MB pieces, so memory stays low whatever the size. --dry-run prints the
config and the files it would write, and writes nothing.`;

/** Presets that are real models' shapes: bf16 like their Hub checkpoints. */
const BIG = new Set(['llama3.2-3b', 'llama3.1-8b', 'qwen2.5-7b', 'qwen2.5-0.5b', 'qwen3-30b-a3b-layers']);

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      preset: { type: 'string', default: 'tiny-qwen3' },
      seed: { type: 'string', default: '1' },
      dtype: { type: 'string' },
      shards: { type: 'string' },
      'dry-run': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const dir = positionals[0];
  if (values.help === true || dir === undefined) {
    process.stdout.write(usage + '\n');
    return dir === undefined && values.help !== true ? 2 : 0;
  }
  if (!(values.preset in PRESETS)) {
    process.stderr.write(`hearth make-model: unknown --preset ${values.preset}; choose one of ${Object.keys(PRESETS).join(', ')}\n`);
    return 2;
  }
  const preset = values.preset as keyof typeof PRESETS;
  const dtype = (values.dtype ?? (BIG.has(preset) && preset !== 'qwen2.5-0.5b' ? 'bf16' : 'f32')) as 'f32' | 'f16' | 'bf16';
  const base: GenerateOptions = { preset, seed: Number(values.seed), dtype };
  const shards = values.shards !== undefined ? Number(values.shards) : BIG.has(preset) ? defaultShardCount(base) : 1;
  const opts: GenerateOptions = { ...base, shards };
  const plan = checkpointPlan(opts);
  const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;
  if (values['dry-run'] === true) {
    process.stdout.write(JSON.stringify(plan.config, null, 2) + '\n');
    for (const f of plan.files) process.stdout.write(`${f.file}  ${gb(f.bytes)}  ${f.tensors} tensors\n`);
    process.stdout.write(`total ${gb(plan.totalBytes)} in ${plan.files.length} file(s); nothing written (--dry-run)\n`);
    return 0;
  }
  process.stderr.write(`writing ${preset} (${dtype}, ${gb(plan.totalBytes)} in ${plan.files.length} file(s)) to ${dir}\n`);
  let shown = -1;
  const t0 = Date.now();
  await generateCheckpoint(dir, {
    ...opts,
    onProgress: (done, total) => {
      const pct = Math.floor((done / total) * 100);
      if (pct === shown || (pct % 5 !== 0 && done !== total)) return;
      shown = pct;
      const s = (Date.now() - t0) / 1000;
      process.stderr.write(`  ${String(pct).padStart(3)}%  ${gb(done)} of ${gb(total)}  ${(done / 1e6 / Math.max(s, 1e-3)).toFixed(0)} MB/s\n`);
    },
  });
  process.stderr.write(`wrote ${preset} checkpoint to ${dir}\n`);
  return 0;
}
