// Issue 20, deliver 3: cached hashes survive a moved cache. A fetched stage folder carries its
// files' digests beside the data (.hearth-digests.json), so the shard cache keys a build by them
// without reading gigabytes again — right after the fetch, and after the folder is moved (new
// path, new inode: the cache's own memo misses). A file rewritten in place is hashed again.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DIGEST_SIDECAR, writeSidecarDigests } from '../src/runtime/digest-sidecar.ts';
import { ContentHashes } from '../src/runtime/shard-cache-key.ts';

t.test('a digest stored beside the data is found after the folder moves, and dropped when the file changes', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-sidecar-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const a = path.join(root, 'cache-a', 'stage');
  fs.mkdirSync(a, { recursive: true });
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) & 0xff));
  fs.writeFileSync(path.join(a, 'model.safetensors'), bytes);
  const sha = createHash('sha256').update(bytes).digest('hex');
  writeSidecarDigests(a, { 'model.safetensors': sha });
  t.ok(fs.existsSync(path.join(a, DIGEST_SIDECAR)), 'the sidecar sits beside the data');

  // A memo that has never seen these files (as after a move: the memo is keyed by path + inode).
  const memo = new ContentHashes(path.join(root, 'hashes.json'));
  t.equal(memo.known(path.join(a, 'model.safetensors')), sha, 'known without hashing');

  const b = path.join(root, 'cache-b', 'moved-stage');
  fs.mkdirSync(path.dirname(b), { recursive: true });
  fs.renameSync(a, b);
  t.equal(new ContentHashes(path.join(root, 'hashes.json')).known(path.join(b, 'model.safetensors')), sha, 'still known after the folder moved');

  // Rewritten in place (same size): the mtime moves, so the sidecar's digest no longer applies.
  const file = path.join(b, 'model.safetensors');
  const later = new Date(Date.now() + 5000);
  fs.writeFileSync(file, Buffer.alloc(bytes.length, 7));
  fs.utimesSync(file, later, later);
  t.equal(new ContentHashes(path.join(root, 'hashes.json')).known(file), null, 'a changed file is hashed again');
  // A sidecar that names a digest of the wrong shape is ignored.
  fs.writeFileSync(path.join(b, DIGEST_SIDECAR), JSON.stringify({ 'model.safetensors': { size: bytes.length, mtimeMs: Math.trunc(fs.statSync(file).mtimeMs), sha256: '../x' } }));
  t.equal(new ContentHashes(path.join(root, 'hashes.json')).known(file), null, 'a malformed digest is ignored');
});
