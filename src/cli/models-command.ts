// `hearth models`: list the checkpoints in the models dir (id, family, params, dtype, size).
import { parseFlags as parseArgs } from './flags.ts';

import { defaultModelsDir, formatBytes, formatParams, listLocalModels, MODELS_DIR_ENV } from '../hub/index.ts';

export const usage = `hearth models [--dir MODELS_DIR] [--json]
Lists local checkpoints (default dir $${MODELS_DIR_ENV} or ~/.cache/hearth/models); pass a folder to --model.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { dir: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const dir = values.dir ?? defaultModelsDir();
  const models = await listLocalModels(dir);
  if (values.json === true) {
    process.stdout.write(JSON.stringify(models, null, 2) + '\n');
    return 0;
  }
  if (models.length === 0) {
    process.stdout.write(`no models in ${dir}; get one with: hearth pull ORG/NAME (or hearth make-model DIR for a random test model)\n`);
    return 0;
  }
  const rows = [['ID', 'FAMILY', 'PARAMS', 'DTYPE', 'SIZE', 'STATE'], ...models.map((m) => [
    m.id, m.family, m.params === null ? '?' : formatParams(m.params), m.dtype ?? '?', formatBytes(m.sizeBytes), m.state,
  ])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n');
  process.stdout.write(`(${dir})\n`);
  return 0;
}
