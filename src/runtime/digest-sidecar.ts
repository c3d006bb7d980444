// Digests stored beside the data (issue 20). A folder hearth writes itself (a worker's fetched
// stage) carries `.hearth-digests.json`: name → { size, mtimeMs, sha256 }. The shard cache's own
// memo of hashes is keyed by path and inode, so a moved or restored cache folder missed it and a
// worker re-hashed gigabytes before it could serve (91 s for 10 GB); the sidecar moves with the
// files. Size and whole-millisecond mtime must still match: `mv`, `rsync -a` and `cp -a` keep
// both, while a file rewritten in place changes its mtime and is hashed again.
import fs from 'node:fs';
import path from 'node:path';

export const DIGEST_SIDECAR = '.hearth-digests.json';

interface SidecarEntry { readonly size: number; readonly mtimeMs: number; readonly sha256: string }

function readSidecar(dir: string): Record<string, SidecarEntry> {
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(dir, DIGEST_SIDECAR), 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, SidecarEntry>) : {};
  } catch {
    return {};
  }
}

/** The sha256 the sidecar beside `file` records for it, when size and mtime still match. */
export function sidecarDigest(file: string): string | null {
  const e = readSidecar(path.dirname(file))[path.basename(file)];
  if (e === undefined || typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) return null;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return null;
  }
  return st.size === e.size && Math.trunc(st.mtimeMs) === e.mtimeMs ? e.sha256 : null;
}

/** Records the digests of files in `dir` (name → sha256), as they are on disk now. */
export function writeSidecarDigests(dir: string, digests: Readonly<Record<string, string>>): void {
  const out: Record<string, SidecarEntry> = readSidecar(dir);
  for (const [name, sha256] of Object.entries(digests)) {
    const st = fs.statSync(path.join(dir, path.basename(name)));
    out[path.basename(name)] = { size: st.size, mtimeMs: Math.trunc(st.mtimeMs), sha256 };
  }
  const tmp = path.join(dir, `${DIGEST_SIDECAR}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(out, null, 1));
  fs.renameSync(tmp, path.join(dir, DIGEST_SIDECAR));
}
