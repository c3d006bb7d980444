// Dependencies point runtime → model, never back: nothing under src/model imports from
// src/runtime (or from any layer above the model). A static check over the import specifiers.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const MODEL_DIR = path.join(import.meta.dirname, '..', 'src', 'model');
const ABOVE = ['runtime', 'worker', 'cluster', 'bus', 'scheduler', 'api', 'cli'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

t.test('src/model imports nothing from runtime/ or the layers above it', async (t) => {
  const files = sources(MODEL_DIR);
  t.ok(files.length > 5, 'found the model sources');
  const bad: string[] = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = (m[1] ?? m[2]) as string;
      if (!spec.startsWith('.')) continue;
      const target = path.relative(path.join(MODEL_DIR, '..'), path.resolve(path.dirname(file), spec));
      const top = target.split(path.sep)[0] as string;
      if (ABOVE.includes(top)) bad.push(`${path.relative(MODEL_DIR, file)} → ${spec}`);
    }
  }
  t.same(bad, [], 'no upward imports');
});
