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
  for (const r of runners) Object.assign(r.stats, { runs: 0, items: 0, positions: 0, busyMs: 0, chunkParts: 0 });
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
  // 4 x 24 + 24 decode items plus 5 prompts; one step per arrival would make items/run ~1.
  t.ok((s0?.items ?? 0) / (s0?.runs ?? 1) >= 2.5, `decode steps batch: ${s0?.items} items in ${s0?.runs} runs`);
});
