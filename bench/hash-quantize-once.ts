// Issue 20's yardstick for a cold start: the time to hash a checkpoint's weight files and build
// (quantize) the whole model once, in one process with the machine's cores — what a single
// device would do with no cluster at all. bench/big-cluster.sh's cold start is compared to this.
//   node --import tsx bench/hash-quantize-once.ts /work/big/llama3.2-3b [threads]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/model/index.ts';
import { hashFiles } from '../src/runtime/hash-files.ts';
import { ShardSession } from '../src/runtime/shard-session.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: hash-quantize-once.ts MODEL_DIR [threads]');
const threads = Number(process.argv[3] ?? os.availableParallelism());
const files = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors')).map((n) => path.join(dir, n));
const t0 = performance.now();
const hashes = await hashFiles(files);
const tHash = performance.now() - t0;
if ([...hashes.values()].some((h) => h === null)) throw new Error('a file could not be hashed');
const numLayers = openCheckpoint(dir).config.numLayers;
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-once-'));
try {
  const t1 = performance.now();
  const s = await ShardSession.create(dir, { start: 0, end: numLayers, quant: 'int4', threads, provider: 'cpu' }, { cacheDir });
  const tBuild = performance.now() - t1;
  await s.release();
  const gb = files.reduce((a, f) => a + fs.statSync(f).size, 0) / 1e9;
  console.log(`${path.basename(dir)}: ${gb.toFixed(2)} GB; hash ${(tHash / 1000).toFixed(1)} s + quantize/build/load int4 (${threads} threads) ${(tBuild / 1000).toFixed(1)} s = ${((tHash + tBuild) / 1000).toFixed(1)} s`);
} finally {
  fs.rmSync(cacheDir, { recursive: true, force: true });
}
