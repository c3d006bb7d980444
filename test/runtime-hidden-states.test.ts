// Embeddings pool the last stage's final-normed hidden states (issue 21 item 6). These come from the
// hidden_normed output of the last stage's graph, fetched only by steps that ask (wantHidden), and
// must equal the reference forward pass's final-normed states at every position: across a split,
// across prefill chunks, in a chunk a stage runs in parts, and beside decode steps in one batch.
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { referenceHiddenStates } from '../src/model/reference.ts';
import { createShardEngine } from '../src/runtime/index.ts';
import { LocalPipeline, createScheduler } from '../src/scheduler/index.ts';
import { StageRunner } from '../src/worker/stage-runner.ts';
import { maxAbsDiff, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

const dir = await tinyCheckpoint(t, 'tiny-qwen3');
const ckpt = openCheckpoint(dir);
const cfg = ckpt.config;
const tokens = tokenStream(37, cfg.vocabSize, 7);
const want = referenceHiddenStates(ckpt, tokens);
ckpt.close();
const h = cfg.hiddenSize;

function diffAll(got: Float32Array, n: number): number {
  if (got.length !== n * h) return Infinity;
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, maxAbsDiff(got.subarray(i * h, (i + 1) * h), want[i]!));
  return m;
}

for (const attention of ['fused', 'plain'] as const) {
  t.test(`${attention}: two stages, chunked, equal the reference at every position`, async (t) => {
    const mid = Math.floor(cfg.numLayers / 2);
    // A small score budget makes the last stage run a chunk in parts (stepInParts).
    const engines = await Promise.all([[0, mid], [mid, cfg.numLayers]].map(([start, end]) => createShardEngine(dir, { start: start!, end: end!, quant: 'none', threads: 1, provider: 'cpu' }, { attention, scoreBudget: 64 })));
    const pipe = new LocalPipeline(engines.map((e) => new StageRunner(e)));
    t.teardown(() => pipe.close());
    const sched = createScheduler(pipe, { prefillChunk: 16, contextLength: 128, vocabSize: cfg.vocabSize });
    const got = await sched.hiddenStates({ id: 'emb', tokens: Int32Array.from(tokens) });
    const d = diffAll(got, tokens.length);
    t.ok(d < 1e-4, `max abs diff over ${tokens.length} positions: ${d}`);
    t.equal(engines[1]!.kvLength('emb.0.0'), 0, 'the sequence is freed afterwards');
    // A plain step on the same pipeline fetches no hidden states.
    const out = await pipe.step({ seq: 's', pos: 0, tokens: Int32Array.from(tokens.slice(0, 3)), promptLen: 3, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, logitBias: null, seed: 0, topLogprobs: -1 }, wantToken: true, wantLogits: false });
    t.equal(out.hidden, undefined, 'a generation step carries no hidden states');
    t.ok(out.token !== null, 'and still samples its token');
  });
}

t.test('an embedding step batched beside a decode step keeps its own rows', async (t) => {
  const engine = await createShardEngine(dir, { start: 0, end: cfg.numLayers, quant: 'none', threads: 1, provider: 'cpu' });
  t.teardown(() => engine.close());
  await engine.run([{ seq: 'other', pos: 0, n: 4, tokens: Int32Array.from(tokenStream(4, cfg.vocabSize, 3)) }]);
  const [a, b] = await engine.run([
    { seq: 'other', pos: 4, n: 1, tokens: Int32Array.of(5) },
    { seq: 'emb', pos: 0, n: 1, tokens: Int32Array.from(tokens.slice(0, 1)), wantHidden: true },
  ]);
  t.equal(a?.hidden, undefined, 'the decode item gets no hidden states');
  t.ok(b?.hidden !== undefined && maxAbsDiff(b.hidden, want[0]!) < 1e-4, `the embedding item gets position 0's: ${b?.hidden === undefined ? 'none' : maxAbsDiff(b.hidden, want[0]!)}`);
});

t.test('an embedding chunk that rides beside decode steps in parts comes back whole', async (t) => {
  const engine = await createShardEngine(dir, { start: 0, end: cfg.numLayers, quant: 'none', threads: 1, provider: 'cpu' });
  t.teardown(() => engine.close());
  // chunkBudget 4: beside a decode step, the 20-position chunk runs 4 positions per engine run.
  const runner = new StageRunner(engine, { chunkBudget: 4 });
  t.teardown(() => runner.close());
  const sampling = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, logitBias: null, seed: 0, topLogprobs: -1 };
  await runner.submit({ item: { seq: 'other', pos: 0, n: 4, tokens: Int32Array.from(tokenStream(4, cfg.vocabSize, 3)) }, promptLen: 4, sampling, wantToken: false, wantLogits: false });
  const decode = runner.submit({ item: { seq: 'other', pos: 4, n: 1, tokens: Int32Array.of(5) }, promptLen: 4, sampling, wantToken: true, wantLogits: false });
  const emb = runner.submit({ item: { seq: 'emb', pos: 0, n: 20, tokens: Int32Array.from(tokens.slice(0, 20)), wantHidden: true }, promptLen: 20, sampling, wantToken: false, wantLogits: false });
  const [d, e] = await Promise.all([decode, emb]);
  t.ok(d.token !== null && d.token !== undefined, 'the decode step got its token');
  t.ok(runner.stats.chunkParts > 0, `the chunk ran in parts (${runner.stats.chunkParts})`);
  t.ok(e.hidden !== undefined && diffAll(e.hidden, 20) < 1e-4, `all 20 positions, as the reference: ${e.hidden === undefined ? 'none' : diffAll(e.hidden, 20)}`);
});
