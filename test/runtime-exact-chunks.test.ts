// Bit-exact invariants of the engine. Exact chunks: a multi-position step marked `exact` gives, at
// every position, bit for bit the logits that token-by-token decode gives (what makes speculative
// decoding and replays change nothing). Batch invariance (fp32, int4): a decode step gives a sequence the
// same bits alone or batched with sequences of other lengths.
// A plain prefill chunk is only close (~1e-5): the test shows both, so it fails if exact chunks
// lose their guarantee and says so if plain chunks ever become exact too.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { Chain, stories260kDir, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

async function compare(t: Test, dir: string, vocab: number, ranges: readonly (readonly [number, number])[], label: string, quant: 'none' | 'int4' = 'none', int4Block?: number): Promise<void> {
  const chain = await Chain.open(t, dir, ranges, quant, int4Block === undefined ? {} : { int4Block });
  const toks = Int32Array.from(tokenStream(36, vocab, 7));
  const p0 = 12;
  const decode: Float32Array[] = [];
  await chain.run([{ seq: 'd', pos: 0, n: p0, tokens: toks.subarray(0, p0) }]);
  for (let i = p0; i < toks.length; i++) {
    const [r] = await chain.run([{ seq: 'd', pos: i, n: 1, tokens: toks.subarray(i, i + 1) }]);
    decode.push((r?.logits ?? new Float32Array(0)).slice());
  }
  for (const exact of [true, false]) {
    const seq = `c${exact}`;
    await chain.run([{ seq, pos: 0, n: p0, tokens: toks.subarray(0, p0) }]);
    let same = 0;
    let rows = 0;
    // Chunks of 1..5 positions, as a speculative step of 0..4 drafts would feed them.
    for (let pos = p0, k = 1; pos < toks.length; pos += k, k = (k % 5) + 1) {
      const n = Math.min(k, toks.length - pos);
      const [r] = await chain.run([{ seq, pos, n, tokens: toks.subarray(pos, pos + n), exact, logitRows: n }]);
      const got = r?.logits ?? new Float32Array(0);
      for (let i = 0; i < n; i++) {
        rows++;
        const want = decode[pos - p0 + i] as Float32Array;
        const row = got.subarray(i * vocab, (i + 1) * vocab);
        if (row.length === want.length && row.every((x, j) => x === want[j])) same++;
      }
    }
    if (exact) t.equal(same, rows, `${label}: all ${rows} positions of exact chunks are bit-identical to decode`);
    else if (quant === 'none') t.ok(same < rows, `${label}: plain chunks differ from decode in ${rows - same} of ${rows} positions (only exact chunks promise bits)`);
  }
}

t.test('exact chunks equal token-by-token decode bit for bit (fused attention: fp32, int4)', async (t) => {
  for (const preset of ['tiny-qwen3', 'tiny-llama'] as const) {
    const dir = await tinyCheckpoint(t, preset);
    await compare(t, dir, 151936, [[0, 4]], `${preset}, 1 stage`);
    await compare(t, dir, 151936, [[0, 1], [1, 3], [3, 4]], `${preset}, 3 stages`);
  }
  // int4 at block 128: one batched product per chunk too (the graph evens out odd row counts).
  await compare(t, await tinyCheckpoint(t, 'tiny-qwen3'), 151936, [[0, 2], [2, 4]], 'tiny-qwen3 int4 block 128, 2 stages', 'int4', 128);
});

t.test('exact chunks on stories260k, fp32 and int4', { skip: fs.existsSync(stories260kDir) ? false : 'no ../shared/models/stories260k' }, async (t) => {
  await compare(t, stories260kDir, 512, [[0, 2], [2, 5]], 'stories260k, 2 stages');
  // int4 at the default block (128): MatMulNBits rounds the last row of an odd row count apart, so
  // the graph evens the count out and the chunk runs as one product through the exact branch.
  await compare(t, stories260kDir, 512, [[0, 2], [2, 5]], 'stories260k int4 block 128, 2 stages', 'int4', 128);
  // At block 32 MatMulNBits is row-invariant as it is.
  await compare(t, stories260kDir, 512, [[0, 2], [2, 5]], 'stories260k int4 block 32, 2 stages', 'int4', 32);
});

t.test('decode is batch-invariant (fp32, int4): a sequence gets the same bits alone or in a ragged batch', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen3');
  const vocab = 151936;
  // int4 at block 32 MatMulNBits gives a row the same bits at any row count; at 128 only at even
  // counts, which the graph makes (alone: 1 row + a zero row; this batch: 3 + 1).
  for (const [ranges, quant, block] of [[[[0, 4]], 'none', 32], [[[0, 2], [2, 4]], 'none', 32], [[[0, 2], [2, 4]], 'int4', 32], [[[0, 2], [2, 4]], 'int4', 128]] as const) {
    const chain = await Chain.open(t, dir, ranges, quant, { int4Block: block });
    const lens = [5, 23, 11];
    const prompt = (k: number): Int32Array => Int32Array.from(tokenStream(lens[k] as number, vocab, 100 + k));
    const next = (k: number, i: number): Int32Array => Int32Array.of((k * 7919 + i * 104729) % vocab);
    const alone: Float32Array[][] = [];
    for (let k = 0; k < lens.length; k++) {
      await chain.run([{ seq: `a${k}`, pos: 0, n: lens[k] as number, tokens: prompt(k) }]);
      const rows: Float32Array[] = [];
      for (let i = 0; i < 4; i++) {
        const [r] = await chain.run([{ seq: `a${k}`, pos: (lens[k] as number) + i, n: 1, tokens: next(k, i) }]);
        rows.push((r?.logits ?? new Float32Array(0)).slice());
      }
      alone.push(rows);
    }
    for (let k = 0; k < lens.length; k++) await chain.run([{ seq: `b${k}`, pos: 0, n: lens[k] as number, tokens: prompt(k) }]);
    let same = 0;
    for (let i = 0; i < 4; i++) {
      const rs = await chain.run(lens.map((len, k) => ({ seq: `b${k}`, pos: len + i, n: 1, tokens: next(k, i) })));
      rs.forEach((r, k) => {
        const want = alone[k]?.[i] ?? new Float32Array(0);
        if (r.logits?.length === want.length && r.logits.every((x, j) => x === want[j])) same++;
      });
    }
    t.equal(same, 12, `${quant}${quant === 'int4' ? ` block ${block}` : ''}, ${ranges.length} stage(s): all 12 batched decode steps (lengths 5, 23, 11) equal decoding alone bit for bit`);
  }
});
