// Two hops per token (issue 10): over 2 real worker processes the last stage feeds each sampled
// token straight back to stage 0, and the text is exactly the one-process text — alone and with
// six sequences batched together, greedy and seeded sampling with penalties. The gateway stays
// the authority: stop ids end a chain, a cancelled sequence leaves no KV behind on any worker,
// and a constrained-style caller (stepwise) keeps the per-token path.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { makeSamplingParams } from '../src/sampling/index.ts';
import { GREEDY, type SamplingParams } from '../src/sampling/types.ts';
import { createScheduler } from '../src/scheduler/index.ts';
import type { GenerateRequest, Generator } from '../src/scheduler/types.ts';
import { gateway } from './helpers/cluster.ts';
import { natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

async function run(g: Generator, req: Omit<GenerateRequest, 'stopTokens'> & { stopTokens?: number[] }): Promise<number[]> {
  const out: number[] = [];
  for await (const ev of g.generate({ stopTokens: [], ...req })) if (ev.type === 'token') out.push(ev.token.token);
  return out;
}

t.test('chained decode over 2 workers: same text alone and batched, stop ids, cancel frees', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-2hop-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 128, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 256, numLayers: 4, vocabSize: 500, tokenizer: false, seed: 21 });
  const N = 24;
  const sampled = (seed: number): SamplingParams => makeSamplingParams({ temperature: 0.9, topK: 20, presencePenalty: 0.5, frequencyPenalty: 0.3, seed });
  const reqs = Array.from({ length: 6 }, (_, k) => ({
    id: `r${k}`,
    prompt: Int32Array.from({ length: 5 + 3 * k }, (_, i) => (i * 41 + 7 * k + 3) % 500),
    maxTokens: N,
    sampling: k % 2 === 0 ? GREEDY : sampled(100 + k),
  }));

  // The reference: one process, one sequence at a time, one step per token.
  const local = await loadLocalModel(model, { threads: 1 });
  const localGen = createScheduler(local.pipeline, { prefixCache: 0 });
  const want: number[][] = [];
  for (const r of reqs) want.push(await run(localGen, r));
  await local.pipeline.close();
  t.ok(want.every((w) => w.length === N && new Set(w).size > 3), 'reference outputs are full and not degenerate');

  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, model);
  const workers = ['w1', 'w2'].map((name) => spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G']));
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 90_000, 'two live stages');
  const sched = createScheduler(pipeline, { prefixCache: 0 });

  // Alone: each sequence is one step from the gateway plus N − 1 chained ones.
  for (const [k, r] of reqs.entries()) {
    const before = { ...pipeline.counts };
    t.same(await run(sched, r), want[k], `sequence ${k} alone: the one-process text`);
    t.equal(pipeline.counts.sent - before.sent, 1, `sequence ${k}: the gateway sent one step`);
    t.equal(pipeline.counts.chained - before.chained, N - 1, `sequence ${k}: ${N - 1} steps chained worker to worker`);
  }

  // Batched: all six at once (the stages batch their decode steps), each the same text.
  const together = await Promise.all(reqs.map((r) => run(sched, { ...r, id: `${r.id}-b` })));
  together.forEach((got, k) => t.same(got, want[k], `sequence ${k} in a batch of 6: the text it gives alone`));

  // A stop id ends the chain where it is sampled (not emitted), as it does stepwise.
  const w0 = want[0] as number[];
  const stopAt = w0.findIndex((x, i) => i >= 5 && w0.indexOf(x) === i);
  const stopTok = w0[stopAt] as number;
  const chainedBefore = pipeline.counts.chained;
  t.same(await run(sched, { ...reqs[0]!, id: 'stop', stopTokens: [stopTok] }), w0.slice(0, stopAt), `stops before token ${stopTok} at index ${stopAt}`);
  t.equal(pipeline.counts.chained - chainedBefore, stopAt, 'no step was chained after the stop id');

  // Stepwise callers (stop strings) keep one gateway round trip per token, same text.
  const sentBefore = pipeline.counts.sent;
  t.same(await run(sched, { ...reqs[1]!, id: 'stepwise', stepwise: true }), want[1], 'stepwise: same text');
  t.equal(pipeline.counts.sent - sentBefore, N, 'stepwise: one gateway step per token');

  // Cancel mid-chain: the stream ends, and the chained steps still on their way are dropped —
  // no worker keeps KV for it.
  const ac = new AbortController();
  let seen = 0;
  for await (const ev of sched.generate({ ...reqs[2]!, id: 'cancel', maxTokens: 400, stopTokens: [], signal: ac.signal })) {
    if (ev.type === 'token' && ++seen === 3) ac.abort();
    if (ev.type === 'done') t.equal(ev.reason, 'cancelled', 'the stream ends cancelled');
  }
  await until(() => pipeline.clusterSnapshot().nodes.every((n) => n.memory.kvBytes === 0), 10_000, 'no KV left on any worker');
  await new Promise((r) => setTimeout(r, 300));
  const failed = workers.flatMap((w) => w.stderr().split('\n').filter((l) => l.includes('step failed')));
  t.same(failed, [], 'steps still under way for the cancelled sequence were dropped, not run and failed');
  t.same(await run(sched, { ...reqs[3]!, id: 'after' }), want[3], 'the next request is served as before');
});
