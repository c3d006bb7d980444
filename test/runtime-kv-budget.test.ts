// Issue 20 (gap C): a stage's KV grows on demand per sequence, bounded by what the node offers
// less its weights. A step that would pass that budget is refused with HEARTH_ERR_KV_FULL (503,
// a message that says what to change) before it runs; other sequences, even those batched in the
// same engine run, go on. Real engines (onnxruntime in a worker thread) and the real StageRunner.
import t from 'tap';
import { createShardEngine, kvFullSequences } from '../src/runtime/index.ts';
import { StageRunner } from '../src/worker/stage-runner.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { ERRORS } from '../src/errors/catalogue.ts';
import { tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

t.test('a tiny offer: growth past offer − weights is refused for that sequence only', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const spec = { start: 0, end: 4, quant: 'none' as const, threads: 1, provider: 'cpu' as const };
  const probe = await createShardEngine(dir, spec, { cacheDir: null });
  const weights = probe.info.weightBytes + probe.info.lookupBytes;
  const perPosition = 4 * 2 * probe.config.numKvHeads * probe.config.headDim * 4;
  await probe.close();
  // Room for 100 positions of KV beyond the weights.
  const engine = await createShardEngine(dir, spec, { cacheDir: null, memoryBytes: weights + 100 * perPosition });
  t.teardown(() => engine.close());
  const vocab = engine.config.vocabSize;
  const ids = (n: number, s: number): Int32Array => Int32Array.from(tokenStream(n, vocab, s));

  await engine.run([{ seq: 'a', pos: 0, n: 60, tokens: ids(60, 1) }]);
  await engine.run([{ seq: 'b', pos: 0, n: 30, tokens: ids(30, 2) }]);
  t.equal(engine.kvBytes(), 90 * perPosition, '90 positions held');
  // c's prompt of 20 would make 110: refused, naming c, with the catalogue's status.
  const err = await engine.run([{ seq: 'c', pos: 0, n: 20, tokens: ids(20, 3) }]).then(() => null, (e: unknown) => e as Error & { code?: string; status?: number });
  t.equal(err?.code, 'HEARTH_ERR_KV_FULL', 'refused with HEARTH_ERR_KV_FULL');
  t.equal(ERRORS.HEARTH_ERR_KV_FULL.status, 503, 'a 503 for the client');
  t.match(err?.message ?? '', /sequence c needs KV for 20 positions on layers \[0, 4\).*offered less.*of weights.*--memory/, `says what and what to change: ${err?.message}`);
  t.equal(engine.kvLength('c'), 0, 'c holds nothing');
  // A batch of a's decode and c's prompt: only c is named; a's step then runs.
  const mixed = await engine.run([{ seq: 'a', pos: 60, n: 1, tokens: ids(1, 4) }, { seq: 'c', pos: 0, n: 20, tokens: ids(20, 3) }]).then(() => null, (e: unknown) => e);
  t.same([...(kvFullSequences(mixed) ?? [])], ['c'], 'the refusal names c alone');
  const [ra] = await engine.run([{ seq: 'a', pos: 60, n: 1, tokens: ids(1, 4) }]);
  t.ok(ra?.logits !== undefined, 'a goes on');
  // Freeing b makes room: c now fits.
  engine.free('b');
  await engine.run([{ seq: 'c', pos: 0, n: 20, tokens: ids(20, 3) }]);
  t.equal(engine.kvBytes(), (61 + 20) * perPosition, 'c runs once b is freed');

  // Through the stage runner (as on a worker): steps batched together, c fails, a and d go on.
  const runner = new StageRunner(engine);
  const work = (seq: string, pos: number, tokens: Int32Array) => ({ item: { seq, pos, n: tokens.length, tokens }, promptLen: pos + tokens.length, sampling: GREEDY, wantToken: true, wantLogits: false });
  const pa = runner.submit(work('a', 61, ids(1, 5)));
  const pc = runner.submit(work('c', 20, ids(25, 6))).then(() => null, (e: unknown) => e as Error & { code?: string });
  const pd = runner.submit(work('d', 0, ids(10, 7)));
  const [wa, wc, wd] = await Promise.all([pa, pc, pd]);
  t.equal(wc?.code, 'HEARTH_ERR_KV_FULL', "c's growth past the budget fails c");
  t.ok(wa.token !== undefined && wa.token !== null, 'a, batched beside it, got its token');
  t.ok(wd.token !== undefined && wd.token !== null, 'd, queued beside it, got its token');
  t.ok(engine.kvBytes() <= 100 * perPosition, `never more than the budget (${engine.kvBytes() / perPosition} positions)`);
});

t.test('a KV budget handed down by the plan wins over the node-side estimate', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const spec = { start: 0, end: 4, quant: 'none' as const, threads: 1, provider: 'cpu' as const };
  const probe = await createShardEngine(dir, spec, { cacheDir: null });
  const perPosition = 4 * 2 * probe.config.numKvHeads * probe.config.headDim * 4;
  await probe.close();
  // The offer alone would leave plenty; the plan's figure leaves 50 positions.
  const engine = await createShardEngine(dir, spec, { cacheDir: null, memoryBytes: 1e9, kvBudgetBytes: 50 * perPosition });
  t.teardown(() => engine.close());
  const ids = Int32Array.from(tokenStream(60, engine.config.vocabSize, 9));
  await engine.run([{ seq: 'a', pos: 0, n: 40, tokens: ids.subarray(0, 40) }]);
  const err = await engine.run([{ seq: 'b', pos: 0, n: 20, tokens: ids.subarray(40, 60) }]).then(() => null, (e: unknown) => e as Error & { code?: string });
  t.equal(err?.code, 'HEARTH_ERR_KV_FULL', '40 + 20 positions pass the plan\'s 50');
  t.match(err?.message ?? '', /the plan's figure for this stage's weights/, `says where the budget came from: ${err?.message}`);
});

