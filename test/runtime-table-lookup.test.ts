// A first stage's int4/int8 token lookup done with positioned reads instead of inside onnxruntime
// (issue 25: the mapped table's looked-up rows each left 64 KB in RSS). The rows are
// GatherBlockQuantized's bit for bit (4 bits with and without zero points, 8 bits; duplicate,
// negative and out-of-range ids), neighbouring rows share a read, and a whole first stage built by
// the engine reads hidden_in, maps none of the table's bytes into the process while it runs a
// prompt, and still gives the reference's logits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import t from 'tap';
import { DT, GraphBuilder, MS_DOMAIN } from '../src/model/onnx/graph.ts';
import { LOOKUP_KEY, moveLookupOut } from '../src/model/onnx/lookup-outside.ts';
import { TableLookup } from '../src/runtime/table-lookup.ts';
import { createShardEngine } from '../src/runtime/index.ts';
import { generateCheckpoint } from '../src/model/index.ts';
import { reference, tokenStream } from './helpers/runtime-exact.ts';

function rand(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const cases = [
  { bits: 4, block: 32, zp: false },
  { bits: 4, block: 32, zp: true },
  { bits: 8, block: 16, zp: false },
  { bits: 8, block: 16, zp: true },
] as const;

for (const c of cases) {
  t.test(`TableLookup = GatherBlockQuantized, ${c.bits} bits, block ${c.block}${c.zp ? ', zero points' : ''}`, async (t) => {
    const v = 300;
    const k = 96;
    const blocks = k / c.block;
    const rowBytes = (k * c.bits) / 8;
    const r = rand(7 + c.bits + (c.zp ? 1 : 0));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-lookup-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const g = new GraphBuilder(dir);
    g.input('input_ids', DT.int32, ['batch', 'seq']);
    const q = g.init('table', DT.uint8, [v, rowBytes], Uint8Array.from({ length: v * rowBytes }, () => Math.floor(r() * 256)));
    const s = g.init('scales', DT.float, [v, blocks], Float32Array.from({ length: v * blocks }, () => (r() - 0.5) * 0.1));
    const zRow = Math.ceil((blocks * c.bits) / 8);
    const z = c.zp ? [g.init('zeros', DT.uint8, [v, zRow], Uint8Array.from({ length: v * zRow }, () => Math.floor(r() * 256)))] : [];
    const rows = g.op('GatherBlockQuantized', [q, 'input_ids', s, ...z], { gather_axis: 0, quantize_axis: 1, block_size: c.block, bits: c.bits }, MS_DOMAIN);
    g.node('Mul', [rows, g.f32(2)], ['out']);
    g.output('out', DT.float, ['batch', 'seq', k]);
    const { model } = g.finish('lookup');
    fs.writeFileSync(path.join(dir, 'gather.onnx'), model);
    const moved = moveLookupOut(model);
    if (moved === null) return t.fail('the lookup was not moved out');
    fs.writeFileSync(path.join(dir, 'model.onnx'), moved);
    t.equal(moveLookupOut(moved), null, 'a moved graph has no lookup left to move');

    // Duplicates, neighbours (3,4,5), far rows, a negative id (counts from the end, as onnxruntime).
    const ids = Int32Array.from([3, 299, 4, 5, 150, 3, -1, 0]);
    const ref = await ort.InferenceSession.create(path.join(dir, 'gather.onnx'));
    t.teardown(() => ref.release());
    const want = (await ref.run({ input_ids: new ort.Tensor('int32', ids, [1, ids.length]) }))['out']?.data as Float32Array;

    const lookup = TableLookup.open(path.join(dir, 'model.onnx'));
    if (lookup === null) return t.fail('no lookup in the moved model');
    t.teardown(() => lookup.close());
    t.equal(lookup.width, k);
    const hid = new Float32Array(ids.length * k).fill(NaN);
    lookup.lookup(ids, hid);
    const sess = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
    t.teardown(() => sess.release());
    t.same(sess.inputNames, ['hidden_in'], 'the moved graph reads hidden_in');
    const got = (await sess.run({ hidden_in: new ort.Tensor('float32', hid, [1, ids.length, k]) }))['out']?.data as Float32Array;
    t.same(Array.from(got), Array.from(want), 'every value equals onnxruntime\'s, bit for bit');
    t.throws(() => lookup.lookup(Int32Array.of(300), new Float32Array(k)), RangeError, 'an id past the table is refused (as onnxruntime)');

    // 3, 4, 5 share a read (and 0 joins them: a few rows apart); 150 and 299 are apart.
    lookup.reads = 0;
    lookup.lookup(Int32Array.from([5, 3, 4]), new Float32Array(3 * k));
    const perGroup = c.zp ? 3 : 2;
    t.equal(lookup.reads, perGroup, 'neighbouring rows: one read of the table, one of the scales (one of the zero points)');
  });
}

/** Resident KiB of the mappings of files under `dir` (/proc/self/smaps: the engine's thread is in this process). */
function residentUnder(dir: string): number {
  let kib = 0;
  let inside = false;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) inside = (head[1] ?? '').startsWith(dir);
    else if (inside) {
      const m = /^Rss:\s+(\d+) kB/.exec(line);
      if (m) kib += Number(m[1]);
    }
  }
  return kib;
}

t.test('an int4 first stage looks tokens up outside onnxruntime: no table page mapped by a prompt, logits as before', async (t) => {
  // A vocabulary large enough that its int4 table spans many 64 KB windows (32768 x 128 / 2 = 2 MB).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-lookup-model-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset: 'tiny-qwen2', tokenizer: false, vocabSize: 32768, hiddenSize: 128, numHeads: 4, headDim: 32, numLayers: 2 });
  const cache = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-lookup-cache-')));
  t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
  const e = await createShardEngine(dir, { start: 0, end: 2, quant: 'int4', threads: 1, provider: 'cpu' }, { cacheDir: cache, int4Block: 32 });
  t.teardown(() => e.close());
  const entry = fs.readdirSync(cache).find((n) => fs.existsSync(path.join(cache, n, 'model.onnx')));
  t.ok(entry, 'the stage is in the cache');
  const meta = (await import('onnx-proto')).default.onnx.ModelProto.decode(fs.readFileSync(path.join(cache, entry as string, 'model.onnx'))).metadataProps;
  t.ok(meta?.some((p) => p.key === LOOKUP_KEY), 'the cached first stage asks its caller for the lookup');
  const before = residentUnder(cache);
  // 600 ids spread over the table: in a mapped table each would fault in a 64 KB window.
  const tokens = tokenStream(600, 32768, 11);
  for (let pos = 0; pos < tokens.length; pos += 200) {
    await e.run([{ seq: 's', pos, n: 200, tokens: Int32Array.from(tokens.slice(pos, pos + 200)) }]);
  }
  const after = residentUnder(cache);
  t.ok(after - before < 256, `table pages resident after the prompt: ${after - before} KiB more (a mapped table: MBs)`);
  // The exactness of int4 is test/runtime-int4*.test.ts's; here only that the rows fed are the
  // right ones: a short prompt's logits within int4's error of the fp32 reference.
  const short = tokens.slice(0, 24);
  const logits = (await e.run([{ seq: 'b', pos: 0, n: short.length, tokens: Int32Array.from(short) }]))[0]?.logits;
  const ref = reference(dir, short);
  const want = ref[short.length - 1] as Float32Array;
  const got = logits ?? new Float32Array(0);
  const rms = (f: (i: number) => number): number => Math.sqrt(want.reduce((a, _, i) => a + f(i) ** 2, 0) / want.length);
  const rel = rms((i) => (got[i] as number) - (want[i] as number)) / rms((i) => want[i] as number);
  // Wrong rows fed give unrelated logits (relative RMS ~1.4); int4 of random weights stays under 0.5.
  t.ok(got.length === want.length && rel < 0.8, `logits within int4's error of the fp32 reference (relative RMS ${rel.toFixed(3)})`);
});
