// Continuous batching on the fused path (issue 10): decode batches whose membership changes from
// step to step (joins, leaves, idle members, a multi-token chunk in between, items in any order)
// give every sequence the logits the reference gives it alone, and a batch that keeps its members
// copies no KV (the group's buffers are read in place).
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { ShardSession } from '../src/runtime/shard-session.ts';
import type { StageItem, StageResult } from '../src/runtime/types.ts';
import { maxAbsDiff, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

t.test('fused batches: joins, leaves and idle slots stay exact; steady batches copy nothing', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  // Two stages in this process: the first takes token ids, the second hidden states.
  const stages = await Promise.all(
    [[0, 2], [2, 4]].map(([start, end]) => ShardSession.create(dir, { start: start as number, end: end as number, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null })),
  );
  t.teardown(() => Promise.all(stages.map((s) => s.release())));
  const prompts: Record<string, number> = { A: 9, B: 5, C: 13, D: 3, E: 7 };
  const toks: Record<string, number[]> = {};
  const refs: Record<string, Float32Array[]> = {};
  Object.keys(prompts).forEach((seq, i) => {
    toks[seq] = tokenStream(40, 151936, 70 + i);
    refs[seq] = reference(dir, toks[seq] as number[]);
  });
  const pos: Record<string, number> = {};
  let maxDiff = 0;
  let compared = 0;
  const run = async (seqs: readonly string[], n = 1): Promise<void> => {
    let items: StageItem[] = seqs.map((seq) => {
      const p = pos[seq] ?? 0;
      const len = p === 0 ? (prompts[seq] as number) : n;
      return { seq, pos: p, n: len, tokens: Int32Array.from((toks[seq] as number[]).slice(p, p + len)), rewind: true };
    });
    let res: StageResult[] = [];
    for (const s of stages) {
      res = await s.run(items);
      items = items.map((it, i) => ({ ...it, hidden: res[i]?.hidden as Float32Array }));
    }
    items.forEach((it, i) => {
      t.equal(res[i]?.seq, it.seq, 'results come back in item order');
      maxDiff = Math.max(maxDiff, maxAbsDiff(res[i]?.logits ?? [], refs[it.seq]?.[it.pos + it.n - 1] ?? []));
      compared++;
      pos[it.seq] = it.pos + it.n;
    });
  };
  const moves = (): string => JSON.stringify(stages.map((s) => s.kv.moves));

  for (const seq of ['A', 'B', 'C', 'D']) await run([seq]);
  await run(['A', 'B', 'C', 'D']); // repacked into one group of 4
  const packed = moves();
  t.equal(stages[0]?.kv.moves.repacked, 1);
  await run(['D', 'C', 'B', 'A']);
  await run(['B', 'A', 'D', 'C']);
  t.equal(moves(), packed, 'a batch that keeps its members copies nothing, in any item order');
  await run(['A', 'B', 'C']); // D sits out: its slot runs a masked dummy row
  t.equal(moves(), packed, 'an idle member costs a dummy row, not a copy');
  for (const s of stages) s.kv.free('D');
  await run(['E']); // E's prompt, alone
  await run(['A', 'E', 'B', 'C']); // E joins in D's freed slot
  t.equal(stages[1]?.kv.moves.joined, 1, 'a joining sequence is copied into a free slot');
  t.equal(stages[1]?.kv.moves.repacked, 1, 'nothing else was repacked');
  await run(['A'], 3); // a 3-token chunk (speculative verification) takes A out of the group
  pos['A'] = (pos['A'] as number) - 2; // two of them rejected: rewound by the next step
  await run(['C', 'B', 'E', 'A']); // and A back in
  await run(['B']); // a lone decode step
  await run(['A', 'B', 'C', 'E']);
  await run(['C', 'E']); // half the group: repacked into a group of 2
  await run(['A', 'B', 'C', 'E']);
  t.ok(maxDiff <= 1e-4, `max |diff| ${maxDiff.toExponential(2)} over ${compared} logit vectors`);
  t.equal(compared, 5 + 4 * 3 + 3 + 4 + 1 + 4 + 1 + 4 + 2 + 4);
  const kvb = stages[0]?.kv;
  t.equal(kvb?.totalBytes(), ['A', 'B', 'C', 'E'].reduce((n, s) => n + (pos[s] as number), 0) * (kvb?.bytesPerPosition ?? 0));
});

t.test('a prompt chunk over the score budget runs in parts and still equals the reference', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  // A budget of 40 scores per head: 13 positions run as parts of 3.
  const ckpt = openCheckpoint(dir);
  const hq = ckpt.config.numHeads;
  ckpt.close();
  const split = await Promise.all(
    [[0, 2], [2, 4]].map(([start, end]) => ShardSession.create(dir, { start: start as number, end: end as number, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null, scoreBudget: hq * 40 })),
  );
  t.teardown(() => Promise.all(split.map((s) => s.release())));
  const toks = tokenStream(20, 151936, 91);
  const ref = reference(dir, toks);
  let items: StageItem[] = [{ seq: 'P', pos: 0, n: 13, tokens: Int32Array.from(toks.slice(0, 13)), logitRows: 5 }];
  let res: StageResult[] = [];
  for (const s of split) {
    res = await s.run(items);
    items = items.map((it, i) => ({ ...it, hidden: res[i]?.hidden as Float32Array }));
  }
  const v = ref[0]?.length ?? 0;
  const logits = res[0]?.logits ?? new Float32Array(0);
  t.equal(logits.length, 5 * v, 'the last 5 positions');
  let maxDiff = 0;
  for (let r = 0; r < 5; r++) maxDiff = Math.max(maxDiff, maxAbsDiff(logits.subarray(r * v, (r + 1) * v), ref[8 + r] ?? []));
  t.ok(maxDiff <= 1e-4, `max |diff| ${maxDiff.toExponential(2)}`);
  t.equal(split[1]?.kv.length('P'), 13);
  t.equal(split[0]?.runs, 5, 'in 5 session runs');
});

t.test('a decode batch of very different lengths runs split by length, still exact', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  // splitBytes 1: any saving splits (the default waits for 32 MB of KV not read).
  const s = await ShardSession.create(dir, { start: 0, end: 4, quant: 'none', threads: 1, provider: 'cpu' }, { cacheDir: null, splitBytes: 1 });
  t.teardown(() => s.release());
  const prompts: Record<string, number> = { X: 3, Y: 4, Z: 20 };
  const toks: Record<string, number[]> = {};
  const refs: Record<string, Float32Array[]> = {};
  Object.keys(prompts).forEach((seq, i) => {
    toks[seq] = tokenStream(30, 151936, 50 + i);
    refs[seq] = reference(dir, toks[seq] as number[]);
  });
  for (const seq of Object.keys(prompts)) {
    const n = prompts[seq] as number;
    await s.run([{ seq, pos: 0, n, tokens: Int32Array.from((toks[seq] as number[]).slice(0, n)) }]);
  }
  let maxDiff = 0;
  const runs0 = s.runs;
  for (let step = 0; step < 3; step++) {
    const seqs = ['Z', 'X', 'Y'];
    const items = seqs.map((seq) => {
      const pos = (prompts[seq] as number) + step;
      return { seq, pos, n: 1, tokens: Int32Array.from((toks[seq] as number[]).slice(pos, pos + 1)) };
    });
    const res = await s.run(items);
    items.forEach((it, i) => {
      t.equal(res[i]?.seq, it.seq);
      maxDiff = Math.max(maxDiff, maxAbsDiff(res[i]?.logits ?? [], refs[it.seq]?.[it.pos] ?? []));
    });
  }
  t.equal(s.runs - runs0, 9, 'lengths 3, 4 and 20 run as three parts each step');
  t.ok(maxDiff <= 1e-4, `max |diff| ${maxDiff.toExponential(2)}`);
});
