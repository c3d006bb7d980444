import { parseFlags as parseArgs } from './flags.ts';
import { generateCheckpoint, PRESETS } from '../model/index.ts';

export const usage = `hearth make-model DIR [--preset ${Object.keys(PRESETS).join('|')}] [--seed N] [--dtype f32|f16|bf16] [--shards N]
Writes a deterministic random checkpoint (a real Hugging Face folder) for tests, demos and benchmarks.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      preset: { type: 'string', default: 'tiny-qwen3' },
      seed: { type: 'string', default: '1' },
      dtype: { type: 'string', default: 'f32' },
      shards: { type: 'string', default: '1' },
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
  await generateCheckpoint(dir, {
    preset: values.preset as keyof typeof PRESETS,
    seed: Number(values.seed),
    dtype: values.dtype as 'f32' | 'f16' | 'bf16',
    shards: Number(values.shards),
  });
  process.stderr.write(`wrote ${values.preset} checkpoint to ${dir}\n`);
  return 0;
}
