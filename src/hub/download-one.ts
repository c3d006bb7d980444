// One file from the Hub into <dest>: bytes go to <dest>.incomplete first; a later run resumes from
// its length with a Range request (WebBlob.slice), hashing the bytes already there so the final
// checksum covers the whole file. Only a verified file is renamed into place; a file that fails
// the checksum is deleted, so the next run starts it fresh instead of resuming bad bytes.
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';

import { downloadFile, fileDownloadInfo } from '@huggingface/hub';

import { HearthError } from '../errors/index.ts';
import { etagHex, newHasher, type ExpectedHash } from './file-hash.ts';
import type { ProgressSink } from './progress-bar.ts';

export const PARTIAL_SUFFIX = '.incomplete';

export interface DownloadOneOptions {
  readonly id: string;
  readonly path: string;
  readonly revision: string;
  readonly hubUrl: string;
  readonly accessToken?: string;
  readonly fetch: typeof fetch;
  readonly dest: string;
  readonly size: number;
  readonly expected: ExpectedHash;
  /** The listing's xet hash, if any: an ETag equal to it is a xet id, not a sha256 to compare. */
  readonly xetHash?: string;
  readonly progress: ProgressSink;
}

export async function partialBytes(dest: string): Promise<number> {
  return (await stat(dest + PARTIAL_SUFFIX).catch(() => null))?.size ?? 0;
}

export async function downloadOne(o: DownloadOneOptions): Promise<void> {
  const partial = o.dest + PARTIAL_SUFFIX;
  let have = await partialBytes(o.dest);
  if (have > o.size) {
    await rm(partial, { force: true });
    have = 0;
  }
  const hasher = newHasher(o.expected, o.size);
  if (have > 0) {
    for await (const chunk of createReadStream(partial, { end: have - 1, highWaterMark: 4 * 1024 * 1024 })) hasher.update(chunk as Buffer);
  }
  // Created up front so even an empty file has a partial to verify and rename.
  await (await open(partial, 'a')).close();
  if (have < o.size) {
    const repo = { type: 'model' as const, name: o.id };
    const cred = o.accessToken === undefined ? {} : { accessToken: o.accessToken };
    const info = await fileDownloadInfo({ repo, path: o.path, revision: o.revision, hubUrl: o.hubUrl, fetch: o.fetch, ...cred });
    if (info === null) throw new HearthError('HEARTH_ERR_PULL', [o.id, `${o.path} is listed but the Hub says it does not exist`]);
    if (info.size !== o.size) throw new HearthError('HEARTH_ERR_PULL', [o.id, `${o.path} is ${info.size} bytes now but was listed at ${o.size}: the repo changed during the pull; run it again`]);
    // The Hub names LFS content by its sha256 in X-Linked-ETag: it must agree with the listing.
    const tag = etagHex(info.etag);
    if (o.expected.algo === 'sha256' && tag !== null && tag.length === 64 && tag !== o.expected.hex && tag !== o.xetHash?.toLowerCase()) {
      throw new HearthError('HEARTH_ERR_PULL', [o.id, `${o.path}: the Hub's ETag ${tag} disagrees with the listing's sha256 ${o.expected.hex}`]);
    }
    // xet: false — the Hub still serves xet-backed files over plain HTTP with Range, which is what resume needs.
    const blob = await downloadFile({ repo, path: o.path, revision: o.revision, hubUrl: o.hubUrl, fetch: o.fetch, xet: false, downloadInfo: info, ...cred });
    if (blob === null) throw new HearthError('HEARTH_ERR_PULL', [o.id, `${o.path} disappeared from the Hub`]);
    const fh = await open(partial, 'a');
    try {
      for await (const chunk of blob.slice(have).stream() as unknown as AsyncIterable<Uint8Array>) {
        await fh.write(chunk);
        hasher.update(chunk);
        have += chunk.length;
        o.progress.bytes(chunk.length);
      }
    } finally {
      await fh.close();
    }
  }
  const got = hasher.digest('hex');
  const size = (await stat(partial)).size;
  if (size !== o.size || got !== o.expected.hex) {
    await rm(partial, { force: true });
    const what = o.expected.algo === 'sha256' ? 'sha256' : 'git blob sha1';
    throw new HearthError('HEARTH_ERR_PULL', [o.id, `${o.path}: checksum mismatch (${what} ${got}, ${size} bytes; the Hub lists ${o.expected.hex}, ${o.size} bytes); the bad file was removed, run the pull again`]);
  }
  await rename(partial, o.dest);
}
