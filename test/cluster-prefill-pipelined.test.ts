// Issue 22 item 2: pipelined prefill over real workers. The chunks of one prompt flow through the
// stages together (stage 0 runs chunk k+1 while stage 1 runs chunk k): the pipeline's own trace
// shows both stages holding chunks of the prompt at the same instant — never the case when each
// chunk waited for the previous one's answer. Prompts sent together take turns chunk by chunk on
// a stage: each prompt's first chunk is through stage 0 before any prompt's last chunk is (first
// come, first served ran one whole prompt, then the next). The tokens are those of each prompt
// alone. Structure only: TTFT ratios are `hearth bench --cluster --prefill`'s.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateCheckpoint } from '../src/model/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { createScheduler } from '../src/scheduler/index.ts';
import { spansOf, stagesOverlap } from '../src/cluster/step-trace.ts';
import { gateway } from './helpers/cluster.ts';
import { natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

t.test('spans: walking back from the last stage\'s send time', async (t) => {
  t.same(spansOf(100, [10, 20], [1, 2]), [{ stage: 0, arrived: 68, left: 78 }, { stage: 1, arrived: 80, left: 100 }]);
  t.equal(stagesOverlap([{ seq: 'a', stepId: 1, spans: spansOf(100, [10, 20], [1, 2]) }, { seq: 'a', stepId: 2, spans: spansOf(150, [10, 20], [1, 2]) }]), false, 'one after the other');
  t.equal(stagesOverlap([{ seq: 'a', stepId: 1, spans: spansOf(100, [10, 20], [1, 2]) }, { seq: 'a', stepId: 2, spans: spansOf(110, [10, 20], [1, 2]) }]), true, 'stage 0 on step 2 while stage 1 on step 1');
});

t.test('2 workers: one prompt\'s chunks on both stages at once; four prompts take turns', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-prefill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 768, numLayers: 4, vocabSize: 500, tokenizer: false, seed: 5 });
  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, model);
  for (const name of ['w1', 'w2']) spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G']);
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 90_000, '2 stages live');
  const sched = createScheduler(pipeline, { prefixCache: 0, prefillChunk: 64 });
  const prompts = [0, 1, 2, 3].map((k) => Int32Array.from({ length: 256 }, (_, i) => (i * 31 + k * 101 + 7) % 500));
  const run = async (id: string, prompt: Int32Array): Promise<number[]> => {
    const out: number[] = [];
    for await (const ev of sched.generate({ id, prompt, maxTokens: 4, sampling: GREEDY, stopTokens: [] })) if (ev.type === 'token') out.push(ev.token.token);
    return out;
  };
  const alone: number[][] = [];
  for (const [k, p] of prompts.entries()) alone.push(await run(`alone${k}`, p));

  pipeline.setTrace(true);
  t.same(await run('one', prompts[0]!), alone[0], 'one prompt: the same tokens');
  const chunks = (pipeline.trace?.steps() ?? []).filter((s) => s.spans.length === 2);
  t.ok(chunks.length >= 3, `${chunks.length} prefill chunks traced over 2 stages`);
  t.ok(stagesOverlap(chunks), 'stage 0 ran a chunk while stage 1 held an earlier one');

  pipeline.setTrace(false);
  pipeline.setTrace(true);
  const together = await Promise.all(prompts.map((p, k) => run(`four${k}`, p)));
  together.forEach((toks, k) => t.same(toks, alone[k], `prompt ${k} sent with three others: the same tokens`));
  // Per prompt, when its chunks left stage 0 (the last chunk's result is its first token, traced
  // only through the chained decode's first answer, so count the non-last chunks too).
  const left = new Map<string, number[]>();
  for (const s of pipeline.trace?.steps() ?? []) {
    if (s.spans.length !== 2 || !s.seq.startsWith('four')) continue;
    const l = left.get(s.seq) ?? [];
    l.push(s.spans[0]!.left);
    left.set(s.seq, l);
  }
  t.equal(left.size, 4, 'every prompt traced');
  const firstOut = Math.max(...[...left.values()].map((l) => Math.min(...l)));
  const lastOut = Math.min(...[...left.values()].map((l) => Math.max(...l)));
  t.ok(firstOut < lastOut, `every prompt had a chunk through stage 0 before any prompt had all of its through (${(lastOut - firstOut).toFixed(1)} ms apart)`);
});
