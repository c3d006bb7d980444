// `hearth models`: list the checkpoints in the models dir (id, family, params, dtype, size), the
// offline demo when it was generated, and what a running gateway serves now (like `ollama ps`).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseFlags as parseArgs } from './flags.ts';
import { demoModelDir } from './serve-common.ts';

import { defaultModelsDir, formatBytes, formatParams, listLocalModels, MODELS_DIR_ENV, type LocalModel } from '../hub/index.ts';

export const usage = `hearth models [--dir MODELS_DIR] [--url http://127.0.0.1:8080] [--api-key KEY] [--json]
Lists local checkpoints (default dir $${MODELS_DIR_ENV} or ~/.cache/hearth/models), the offline demo,
and what the gateway at --url (default $HEARTH_URL or http://127.0.0.1:8080) serves now.`;

interface Serving {
  readonly url: string;
  readonly models: { id: string; description?: string }[];
}

/** GET /v1/models of a running gateway, or null when none answers within a second. */
async function serving(url: string, apiKey: string): Promise<Serving | null> {
  try {
    const res = await fetch(new URL('/v1/models', url), { headers: apiKey === '' ? {} : { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(1000) });
    if (!res.ok) return null;
    const body = (await res.json()) as { data?: { id: string; description?: string }[] };
    return { url, models: body.data ?? [] };
  } catch {
    return null;
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      url: { type: 'string', default: process.env['HEARTH_URL'] ?? 'http://127.0.0.1:8080' },
      'api-key': { type: 'string', default: process.env['HEARTH_API_KEY'] ?? '' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const dir = values.dir ?? defaultModelsDir();
  const demo = demoModelDir();
  const demos: LocalModel[] = existsSync(path.join(demo, 'config.json')) ? await listLocalModels(path.dirname(demo)) : [];
  const models = [...(await listLocalModels(dir)), ...demos];
  const now = await serving(values.url, values['api-key']);
  const servedIds = new Set(now?.models.map((m) => m.id) ?? []);
  const isServed = (m: LocalModel): boolean => servedIds.has(path.basename(m.dir)) || servedIds.has(m.id);
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ models: models.map((m) => ({ ...m, demo: demos.includes(m), served: isServed(m) })), serving: now }, null, 2) + '\n');
    return 0;
  }
  if (now !== null) {
    for (const m of now.models) process.stdout.write(`serving now at ${now.url}: ${m.id}${m.description !== undefined ? `  (${m.description})` : ''}\n`);
  }
  if (models.length === 0) {
    process.stdout.write(`no models in ${dir}; get one with: hearth pull ORG/NAME (or hearth make-model DIR for a random test model)\n`);
    return 0;
  }
  const rows = [['ID', 'FAMILY', 'PARAMS', 'DTYPE', 'SIZE', 'STATE'], ...models.map((m) => [
    demos.includes(m) ? `${m.id} (demo: random weights)` : m.id, m.family, m.params === null ? '?' : formatParams(m.params), m.dtype ?? '?', formatBytes(m.sizeBytes),
    `${m.state}${isServed(m) ? ', served' : ''}`,
  ])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n');
  process.stdout.write(`(${dir})\n`);
  return 0;
}
