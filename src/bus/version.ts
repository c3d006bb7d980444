// hearth's version as package.json states it: workers report it in probe replies, so `hearth
// doctor` can tell a mixed-version cluster (read once; the file ships with the program).

import { readFileSync } from 'node:fs';

let cached: string | null = null;

export function hearthVersion(): string {
  if (cached === null) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
