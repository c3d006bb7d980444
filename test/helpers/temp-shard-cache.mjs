// Loaded before every test file (package.json: tap.node-arg). The built-shard cache goes to a
// temporary folder per test file, removed when that file's process exits: tests never write to the
// user's ~/.cache/hearth/shards, and each file starts cold and then exercises the cache. Worker
// processes the tests spawn inherit the variable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

if (process.env.HEARTH_CACHE_DIR === undefined) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-test-shards-'));
  process.env.HEARTH_CACHE_DIR = dir;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
}
