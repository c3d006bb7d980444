// StageRunner batching (issue 10): concurrent greedy streams over a 2-stage pipeline in this
// process batch their decode steps (whole batches, not a first arrival and the rest), a long
// prompt arriving while they decode runs in chunk-budget parts beside their steps, and every
// stream gives exactly the tokens it gives alone.
import t from 'tap';
import { createShardEngine } from '../src/runtime/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { LocalPipeline, createScheduler } from '../src/scheduler/index.ts';
import { StageRunner } from '../src/worker/stage-runner.ts';
import { tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

t.test('batched streams and a chunk split beside them equal each stream alone', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const engines = await Promise.all([[0, 2], [2, 4]].map(([start, end]) => createShardEngine(dir, { start: start as number, end: end as number, quant: 'none', threads: 1, provider: 'cpu' })));
  const runners = engines.map((e) => new StageRunner(e, { chunkBudget: 4 }));
  const pipe = new LocalPipeline(runners);
  t.teardown(() => pipe.close());
  const gen = createScheduler(pipe, { prefixCache: 0, prefillChunk: 64 });
  const vocab = engines[0]?.config.vocabSize ?? 0;
  const prompts = [5, 9, 3, 7, 40].map((n, k) => Int32Array.from(tokenStream(n, vocab, 300 + k)));
  const run = async (k: number, tokens: number, onToken?: (n: number) => void): Promise<number[]> => {
    const out: number[] = [];
    for await (const ev of gen.generate({ id: `s${k}-${Math.random()}`, prompt: prompts[k] as Int32Array, maxTokens: tokens, sampling: GREEDY, stopTokens: [] })) {
      if (ev.type === 'token') out.push(ev.token.token);
      onToken?.(out.length);
    }
    return out;
  };
  const alone: number[][] = [];
  for (let k = 0; k < prompts.length; k++) alone.push(await run(k, 24));
  for (const r of runners) Object.assign(r.stats, { runs: 0, items: 0, positions: 0, busyMs: 0, chunkParts: 0, maxItems: 0 });
  // Four streams decode together; the long prompt joins once they are under way.
  let started!: () => void;
  const underWay = new Promise<void>((r) => (started = r));
  const together = await Promise.all([
    ...[0, 1, 2, 3].map((k) => run(k, 24, (n) => n === 2 && started())),
    underWay.then(() => run(4, 24)),
  ]);
  together.forEach((toks, k) => t.same(toks, alone[k], `stream ${k}: the same tokens as alone`));
  const s0 = runners[0]?.stats;
  t.ok((s0?.chunkParts ?? 0) >= 2, `the 40-token prompt ran in parts beside decode steps (${s0?.chunkParts} parts)`);
  // 4 x 24 + 24 decode items plus 5 prompts; one step per arrival would make items/run ~1. On 2
  // stages they run as 2 micro-batches of ceil(4 / 2) = 2 decodes (+ a prompt part).
  t.ok((s0?.items ?? 0) / (s0?.runs ?? 1) >= 1.6, `decode steps batch: ${s0?.items} items in ${s0?.runs} runs`);
  t.ok((s0?.maxItems ?? 0) <= 3, `at most ceil(streams / stages) decodes and a prompt part per run (largest run: ${s0?.maxItems})`);
});

t.test('a sequence freed while its step waits in the queue does not fail the steps batched beside it', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const engine = await createShardEngine(dir, { start: 0, end: 4, quant: 'none', threads: 1, provider: 'cpu' });
  const runner = new StageRunner(engine);
  t.teardown(() => engine.close());
  const vocab = engine.config.vocabSize;
  const work = (seq: string, pos: number, tokens: Int32Array) => ({
    item: { seq, pos, n: tokens.length, tokens }, promptLen: pos + tokens.length, sampling: GREEDY, wantToken: true, wantLogits: false,
  });
  for (const seq of ['a', 'b']) await runner.submit(work(seq, 0, Int32Array.from(tokenStream(6, vocab, seq.charCodeAt(0)))));
  // A long prompt keeps the engine busy while a's and b's next steps queue behind it.
  const busy = runner.submit(work('c', 0, Int32Array.from(tokenStream(48, vocab, 7))));
  // Settled at once so the rejection is handled before the test awaits it.
  const a = runner.submit(work('a', 6, Int32Array.of(3))).then(() => null, (e: unknown) => e as Error);
  const b = runner.submit(work('b', 6, Int32Array.of(4)));
  runner.free('a'); // the client of a went away
  await busy;
  t.match((await a)?.message, /freed before its step ran/, "a's queued step is dropped");
  const r = await b;
  t.ok(r.token !== null && r.token !== undefined, `b's step ran (token ${r.token?.token})`);
  t.equal(engine.kvLength('b'), 7, "b's KV holds its new position");
});

t.test('a stage steps ceil(decoding sequences / stages) at a time: one micro-batch per stage', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const engine = await createShardEngine(dir, { start: 0, end: 4, quant: 'none', threads: 1, provider: 'cpu' });
  t.teardown(() => engine.close());
  const vocab = engine.config.vocabSize;
  const work = (seq: string, pos: number, tokens: Int32Array) => ({
    item: { seq, pos, n: tokens.length, tokens }, promptLen: pos + tokens.length, sampling: GREEDY, wantToken: true, wantLogits: false,
  });
  const seqs = ['a', 'b', 'c', 'd'];
  const largest = async (stages: number, tag: string): Promise<number> => {
    const runner = new StageRunner(engine);
    runner.setStages(stages);
    for (const q of seqs) await runner.submit(work(tag + q, 0, Int32Array.from(tokenStream(6, vocab, q.charCodeAt(0)))));
    runner.stats.maxItems = 0;
    // A long prompt keeps the engine busy while the four decode steps queue behind it.
    const busy = runner.submit(work(`${tag}e`, 0, Int32Array.from(tokenStream(48, vocab, 7))));
    // Let it start alone (a prompt chunk rides along with decode steps that are already queued).
    await new Promise((r) => setTimeout(r, 3));
    const steps = seqs.map((q) => runner.submit(work(tag + q, 6, Int32Array.of(3))));
    await Promise.all([busy, ...steps]);
    for (const q of [...seqs, 'e']) runner.free(tag + q);
    return runner.stats.maxItems;
  };
  t.equal(await largest(1, 'one'), 4, 'one stage: the four decode steps run as one batch');
  t.equal(await largest(2, 'two'), 2, 'two stages: two micro-batches of 2');
  t.equal(await largest(4, 'four'), 1, 'four stages: one each');
});

t.test("a sequence's one-position step never overtakes its own prefill chunk left for a later run", async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-llama');
  const engine = await createShardEngine(dir, { start: 0, end: 4, quant: 'none', threads: 1, provider: 'cpu' });
  const runner = new StageRunner(engine);
  t.teardown(async () => { await runner.close(); await engine.close(); });
  const vocab = engine.config.vocabSize;
  const toks = (n: number, s: number): Int32Array => Int32Array.from(tokenStream(n, vocab, s));
  // Queued together: B's chunk is picked first (one chunk a run); A's chunk waits for the next run,
  // and A's step at position 8 must wait behind it, not ride along with B's chunk (as a replay's
  // last step once did: "step at position 47 but this stage holds 0 positions").
  const work = (seq: string, pos: number, n: number, s: number) => runner.submit({ item: { seq, pos, n, tokens: toks(n, s) }, promptLen: 8, sampling: GREEDY, wantToken: pos + n > 8 || n === 1, wantLogits: false });
  const results = await Promise.allSettled([work('B', 0, 8, 1), work('A', 0, 8, 2), work('A', 8, 1, 3)]);
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled'], 'every step ran, in its sequence\'s order');
  t.equal(engine.kvLength('A'), 9, 'A holds its 9 positions');
});
