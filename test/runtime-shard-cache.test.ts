// The built-shard cache: a cached load gives bit-identical logits to an uncached one, a damaged
// entry (bytes flipped, a file cut short, a model onnxruntime refuses) is rebuilt rather than
// crashed on or trusted, the key follows the checkpoint's content (not its mtime), and the size
// cap evicts the least recently used entry. Every test uses its own temporary cache folder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ShardSession } from '../src/runtime/shard-session.ts';
import type { Quant, StageSpec } from '../src/runtime/types.ts';
import { tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

function tempCache(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-shard-cache-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Loads the shard, runs a 5-token prefill and one decode step; returns both outputs (logits or hidden) and the cache state. */
async function logitsOf(dir: string, spec: StageSpec, cacheDir: string | null): Promise<{ bytes: Buffer; cache: string }> {
  const s = await ShardSession.create(dir, spec, { cacheDir });
  try {
    const tokens = Int32Array.from(tokenStream(6, s.info.config.vocabSize, 7));
    const [a] = await s.run([{ seq: 'x', pos: 0, n: 5, tokens: tokens.subarray(0, 5) }]);
    const [b] = await s.run([{ seq: 'x', pos: 5, n: 1, tokens: tokens.subarray(5, 6) }]);
    const la = (a?.logits ?? a?.hidden) as Float32Array;
    const lb = (b?.logits ?? b?.hidden) as Float32Array;
    const bytes = Buffer.concat([Buffer.from(la.buffer, la.byteOffset, la.byteLength), Buffer.from(lb.buffer, lb.byteOffset, lb.byteLength)]);
    return { bytes, cache: s.info.cache };
  } finally {
    await s.release();
  }
}

function onlyEntry(cacheDir: string): string {
  const entries = fs.readdirSync(cacheDir).filter((n) => /^[0-9a-f]{32}$/.test(n));
  if (entries.length !== 1) throw new Error(`expected one entry, found ${entries.length}`);
  return path.join(cacheDir, entries[0] as string);
}

function largestWeightFile(entry: string): string {
  const files = fs.readdirSync(entry).filter((n) => n.endsWith('.bin'));
  files.sort((a, b) => fs.statSync(path.join(entry, b)).size - fs.statSync(path.join(entry, a)).size);
  return path.join(entry, files[0] as string);
}

for (const quant of ['int4', 'none'] as Quant[]) {
  t.test(`${quant}: cached load is bit-identical to an uncached one; damaged entries are rebuilt`, async (t) => {
    // bf16 for quant none: an fp32 checkpoint is read in place and its entry holds no weight file.
    const dir = await tinyCheckpoint(t, 'tiny-qwen2', quant === 'none' ? 'bf16' : undefined);
    const cacheDir = tempCache(t);
    const spec: StageSpec = { start: 0, end: 4, quant, threads: 1, provider: 'cpu' }; // the whole tiny model
    const plain = await logitsOf(dir, spec, null);
    t.equal(plain.cache, 'off');
    const first = await logitsOf(dir, spec, cacheDir);
    t.equal(first.cache, 'built', 'first load builds and stores');
    t.ok(first.bytes.equals(plain.bytes), 'built-and-stored load equals the uncached one');
    const again = await logitsOf(dir, spec, cacheDir);
    t.equal(again.cache, 'hit', 'second load comes from the cache');
    t.ok(again.bytes.equals(plain.bytes), 'cached logits are bit-identical');
    t.same(fs.readdirSync(path.join(cacheDir, 'tmp')), [], 'no temporary folders left behind');

    // Same size, different bytes: only the hashes can tell.
    const w = largestWeightFile(onlyEntry(cacheDir));
    const buf = fs.readFileSync(w);
    for (let i = 0; i < buf.length; i += 7) buf[i] = (buf[i] as number) ^ 0x5a;
    fs.writeFileSync(w, buf);
    const flipped = await logitsOf(dir, spec, cacheDir);
    t.equal(flipped.cache, 'built', 'an entry whose hashes do not match is rebuilt');
    t.ok(flipped.bytes.equals(plain.bytes), 'and the rebuilt load is right');

    // Cut short: caught by the size check before loading.
    fs.truncateSync(largestWeightFile(onlyEntry(cacheDir)), 10);
    const cut = await logitsOf(dir, spec, cacheDir);
    t.equal(cut.cache, 'built', 'a truncated entry is rebuilt');
    t.ok(cut.bytes.equals(plain.bytes));

    // A model file onnxruntime refuses (same size, so the size check passes).
    const model = path.join(onlyEntry(cacheDir), 'model.onnx');
    fs.writeFileSync(model, Buffer.alloc(fs.statSync(model).size, 0xff));
    const refused = await logitsOf(dir, spec, cacheDir);
    t.equal(refused.cache, 'built', 'an entry onnxruntime cannot load is rebuilt');
    t.ok(refused.bytes.equals(plain.bytes));

    // A manifest that is not JSON.
    fs.writeFileSync(path.join(onlyEntry(cacheDir), 'manifest.json'), '{not json');
    t.equal((await logitsOf(dir, spec, cacheDir)).cache, 'built', 'an unreadable manifest is rebuilt');
    t.equal((await logitsOf(dir, spec, cacheDir)).cache, 'hit', 'and then hits again');
  });
}

t.test('the key follows checkpoint content: a touched file still hits, changed weights miss', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const cacheDir = tempCache(t);
  const spec: StageSpec = { start: 0, end: 2, quant: 'int4', threads: 1, provider: 'cpu' };
  const base = await logitsOf(dir, spec, cacheDir);
  t.equal(base.cache, 'built');
  const file = path.join(dir, 'model.safetensors');
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(file, later, later);
  t.equal((await logitsOf(dir, spec, cacheDir)).cache, 'hit', 'new mtime, same content: rehashed, same entry');
  // Change the last bytes of the file (inside the last tensor's data) in a fresh file.
  const bytes = fs.readFileSync(file);
  for (let i = bytes.length - 64; i < bytes.length; i++) bytes[i] = (bytes[i] as number) ^ 0x01;
  fs.rmSync(file);
  fs.writeFileSync(file, bytes);
  const changed = await logitsOf(dir, spec, cacheDir);
  t.equal(changed.cache, 'built', 'changed content builds a new entry');
  const other = await logitsOf(dir, { ...spec, end: 1 }, cacheDir);
  t.equal(other.cache, 'built', 'another layer range is another entry');
  t.equal(fs.readdirSync(cacheDir).filter((n) => /^[0-9a-f]{32}$/.test(n)).length, 3);
});

t.test('the size cap evicts the least recently used entry, never the one just made', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const cacheDir = tempCache(t);
  const spec: StageSpec = { start: 0, end: 1, quant: 'int4', threads: 1, provider: 'cpu' };
  await logitsOf(dir, spec, cacheDir);
  const a = onlyEntry(cacheDir);
  const prev = process.env['HEARTH_CACHE_MAX_GB'];
  process.env['HEARTH_CACHE_MAX_GB'] = '0';
  t.teardown(() => {
    if (prev === undefined) delete process.env['HEARTH_CACHE_MAX_GB'];
    else process.env['HEARTH_CACHE_MAX_GB'] = prev;
  });
  t.equal((await logitsOf(dir, { ...spec, end: 2 }, cacheDir)).cache, 'built');
  const left = fs.readdirSync(cacheDir).filter((n) => /^[0-9a-f]{32}$/.test(n));
  t.equal(left.length, 1, 'a cap of 0 keeps only the newest entry');
  t.not(path.join(cacheDir, left[0] as string), a, 'the older entry went');
});
