// ShardEngine behaviour beyond exactness: position checks, prefix forks, freeing KV, batched
// steps of one sequence, the opt-in CUDA provider's error, and an event loop that stays free.
import t from 'tap';
import { isHearthError } from '../src/errors/index.ts';
import { createShardEngine } from '../src/runtime/index.ts';
import { Chain, maxAbsDiff, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

t.test('engine: KV positions, fork, free, kvBytes', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const a = tokenStream(24, 151936, 41);
  const c = [...a.slice(0, 10), ...tokenStream(6, 151936, 42)];
  const refA = reference(dir, a);
  const refC = reference(dir, c);
  const chain = await Chain.open(t, dir, [[0, 2], [2, 4]]);
  const [e0, e1] = chain.engines;
  if (!e0 || !e1) throw new Error('two engines expected');
  t.ok(e0.first && !e0.last && e1.last && !e1.first);
  t.ok(e0.weightBytes() > 0 && e1.weightBytes() > 0);

  await chain.run([{ seq: 'A', pos: 0, n: 16, tokens: Int32Array.from(a.slice(0, 16)) }]);
  t.equal(e0.kvLength('A'), 16);
  const perPos = 2 * 2 * 2 * 16 * 4; // layers × (K,V) × kv heads × head_dim × fp32
  t.equal(e0.kvBytes(), 16 * perPos);

  const err = await e0.run([{ seq: 'A', pos: 3, n: 1, tokens: Int32Array.of(1) }]).catch((x: unknown) => x);
  t.ok(isHearthError(err, 'HEARTH_ERR_KV_POSITION'), 'a step at the wrong position is refused');
  t.match((err as Error).message, /position 3 .* holds 16/);
  t.equal(e0.kvLength('A'), 16, 'a refused step changes nothing');

  // C shares A's first 10 tokens: fork them, then prefill C's own 6.
  const [rc] = await chain.run([{ seq: 'C', pos: 10, n: 6, tokens: Int32Array.from(c.slice(10)), fork: { from: 'A', len: 10 } }]);
  t.ok(maxAbsDiff(rc?.logits ?? [], refC[15] as Float32Array) <= 1e-4, 'forked prefix + own tokens equal the reference');
  t.equal(e1.kvLength('C'), 16);

  // Several one-token steps of the same sequence in one call run in order.
  const res = await chain.run([
    { seq: 'A', pos: 16, n: 1, tokens: Int32Array.of(a[16] as number) },
    { seq: 'A', pos: 17, n: 1, tokens: Int32Array.of(a[17] as number) },
  ]);
  t.ok(maxAbsDiff(res[1]?.logits ?? [], refA[17] as Float32Array) <= 1e-4, 'consecutive steps of one sequence in one call');

  e0.free('A');
  e1.free('A');
  t.equal(e0.kvLength('A'), 0);
  t.equal(e0.kvBytes(), 16 * perPos, 'only C is left');
  const [again] = await chain.run([{ seq: 'A', pos: 0, n: 4, tokens: Int32Array.from(a.slice(0, 4)) }]);
  t.ok(maxAbsDiff(again?.logits ?? [], refA[3] as Float32Array) <= 1e-4, 'a freed sequence starts over');
  e0.free('nope'); // unknown: a no-op
});

t.test('engine: logits for several final positions, and rewinding rejected positions', async (t) => {
  // What speculative decoding needs: a step of k+1 positions returns the logits at each of them, and
  // a later step can cut the KV back to any earlier position on every stage.
  const dir = await tinyCheckpoint(t, 'tiny-qwen3');
  const a = tokenStream(20, 151936, 51);
  const ref = reference(dir, a);
  const v = 151936;
  for (const attention of ['fused', 'plain', 'gqa'] as const) {
    const chain = await Chain.open(t, dir, [[0, 1], [1, 3], [3, 4]], 'none', { attention });
    const last = chain.engines.at(-1);
    if (!last) throw new Error('engines expected');
    // Prefill 10, then "verify" positions 10..14 where the tokens at 13 and 14 are wrong drafts.
    await chain.run([{ seq: 'A', pos: 0, n: 10, tokens: Int32Array.from(a.slice(0, 10)) }]);
    const drafts = Int32Array.from([...a.slice(10, 13), 8, 9]);
    const [r] = await chain.run([{ seq: 'A', pos: 10, n: 5, tokens: drafts, logitRows: 5 }]);
    const rows = r?.logits ?? new Float32Array(0);
    t.equal(rows.length, 5 * v, `${attention}: 5 rows of logits`);
    for (const i of [0, 1, 2]) t.ok(maxAbsDiff(rows.subarray(i * v, (i + 1) * v), ref[10 + i] as Float32Array) <= 1e-4, `${attention}: row ${i} is the reference at position ${10 + i}`);
    t.equal(last.kvLength('A'), 15);
    // Positions 13 and 14 were rejected: the next step rewinds to 13 on every stage.
    const refused = await chain.run([{ seq: 'A', pos: 13, n: 1, tokens: Int32Array.of(a[13] as number) }]).catch((e: unknown) => e);
    t.ok(isHearthError(refused, 'HEARTH_ERR_KV_POSITION'), `${attention}: without rewind an earlier position is still refused`);
    const [after] = await chain.run([{ seq: 'A', pos: 13, n: 3, tokens: Int32Array.from(a.slice(13, 16)), rewind: true, logitRows: 2 }]);
    for (const e of chain.engines) t.equal(e.kvLength('A'), 16, `${attention}: every stage holds 16 positions after the rewind`);
    const two = after?.logits ?? new Float32Array(0);
    t.ok(maxAbsDiff(two.subarray(0, v), ref[14] as Float32Array) <= 1e-4 && maxAbsDiff(two.subarray(v), ref[15] as Float32Array) <= 1e-4, `${attention}: after the rewind the logits equal a run that never drafted`);
    const [next] = await chain.run([{ seq: 'A', pos: 16, n: 1, tokens: Int32Array.of(a[16] as number) }]);
    t.ok(maxAbsDiff(next?.logits ?? [], ref[16] as Float32Array) <= 1e-4, `${attention}: and so does the next decode step`);
    const bad = await chain.run([{ seq: 'A', pos: 17, n: 1, tokens: Int32Array.of(1), logitRows: 2 }]).catch((e: unknown) => e);
    t.match(String(bad), /logitRows 2 outside 1\.\.1/, `${attention}: more logit rows than positions is refused`);
  }
});

t.test('engine: provider cuda fails with HEARTH_ERR_PROVIDER saying what is missing', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-mistral');
  const err = await createShardEngine(dir, { start: 0, end: 1, quant: 'none', threads: 1, provider: 'cuda' }).catch((x: unknown) => x);
  t.ok(isHearthError(err, 'HEARTH_ERR_PROVIDER'), (err as Error).message);
  t.match((err as Error).message, /cuda.*CUDA/s);
});

t.test('engine: inference runs off the event loop', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const e = await createShardEngine(dir, { start: 0, end: 4, quant: 'none', threads: 1, provider: 'cpu' });
  t.teardown(() => e.close());
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) await e.run([{ seq: `s${i}`, pos: 0, n: 200, tokens: Int32Array.from(tokenStream(200, 151936, i + 1)) }]);
  const ms = performance.now() - t0;
  clearInterval(timer);
  // A blocked loop would tick ~once per run; a free one ticks every few ms throughout.
  t.ok(ticks >= Math.min(20, ms / 20), `${ticks} timer ticks during ${ms.toFixed(0)} ms of inference`);
});
