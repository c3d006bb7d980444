// <model dir>/.hearth-pull.json: what a pull verified, so a re-run skips finished files without
// re-hashing gigabytes, and `hearth models` can tell a finished pull from an interrupted one.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const PULL_MARKER = '.hearth-pull.json';

export interface PullMarker {
  readonly id: string;
  readonly revision: string;
  readonly endpoint: string;
  /** Repo path → size and the hash it was verified against (sha256 or git blob id). */
  readonly files: Record<string, { readonly size: number; readonly oid: string }>;
  /** Set once every file is in place. */
  readonly completedAt: string | null;
}

export async function readPullMarker(dir: string): Promise<PullMarker | null> {
  try {
    return JSON.parse(await readFile(path.join(dir, PULL_MARKER), 'utf8')) as PullMarker;
  } catch {
    return null;
  }
}

export async function writePullMarker(dir: string, marker: PullMarker): Promise<void> {
  const tmp = path.join(dir, `${PULL_MARKER}.tmp`);
  await writeFile(tmp, JSON.stringify(marker, null, 1));
  await rename(tmp, path.join(dir, PULL_MARKER));
}
