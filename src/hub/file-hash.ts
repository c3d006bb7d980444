// What a downloaded file must hash to. LFS files (all weights) are named by the sha256 of their
// content: the tree listing's `lfs.oid`, the same value the Hub sends as X-Linked-ETag / the CDN's
// ETag. Small files kept in git are named by their git blob id: sha1("blob <size>\0" + content).
import { createHash, type Hash } from 'node:crypto';

export interface ExpectedHash {
  readonly algo: 'sha256' | 'git-sha1';
  readonly hex: string;
}

export function newHasher(expected: ExpectedHash, size: number): Hash {
  if (expected.algo === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

/** An ETag as the Hub sends it (`"abc…"`, maybe `W/"…"`) → bare lowercase hex, or null. */
export function etagHex(etag: string | undefined | null): string | null {
  if (etag === undefined || etag === null) return null;
  const m = /^(?:W\/)?"?([0-9a-fA-F]{40}|[0-9a-fA-F]{64})"?$/.exec(etag.trim());
  return m === null ? null : (m[1] as string).toLowerCase();
}
