// Speculative decoding is exact: greedy and seeded sampling give token for token what decoding
// without speculation gives, on 1, 2 and 3 in-process stages, unconstrained and under json_schema
// (real shard engines in fp32, the real Qwen3 tokenizer and constraint). Drafts come from prompt
// lookup and grammar jump-forward; the counters show drafts were both accepted and rejected, so
// the accept path and the rollback (rewind on the next step) both ran. And the KV after a
// rollback equals the KV of a run that never drafted: the next step's logits match.
// 2 and 3 stages: scheduler-speculate-split.test.ts (the same cases; split so each file stays short).
import t from 'tap';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { referenceLogits } from '../src/model/reference.ts';
import { makeSamplingParams } from '../src/sampling/index.ts';
import { lookupDraft } from '../src/scheduler/index.ts';
import { identical } from './helpers/speculate.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { maxAbsDiff } from './helpers/runtime-exact.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-spec-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await generateCheckpoint(dir, { preset: 'tiny-llama', seed: 11 });

t.test('prompt lookup drafts what followed the latest earlier occurrence of the longest suffix', async (t) => {
  const toks = Int32Array.from([1, 2, 3, 9, 1, 2, 3, 7, 8, 5, 2, 3]);
  t.same(lookupDraft(toks, toks.length, 4), [7, 8, 5, 2], 'the 2-gram [2, 3] last seen before 7');
  t.same(lookupDraft(toks, 7, 3), [9, 1, 2], 'with only a prefix of the tokens: the 3-gram [1, 2, 3] before 9');
  t.same(lookupDraft(Int32Array.from([4, 5, 6]), 3, 4), [], 'no earlier occurrence: no draft');
});

t.test('identical with and without speculation on 1 stage', async (t) => {
  await identical(t, dir, [1]);
});

t.test('after a rollback the KV equals a run that never drafted', async (t) => {
  const ckpt = openCheckpoint(dir);
  t.teardown(() => ckpt.close());
  const prompt = Array.from({ length: 9 }, (_, i) => 300 + i * 7);
  for (const stages of [1, 2, 3]) {
    const model = await loadLocalModel(dir, { stages, threads: 1 });
    t.teardown(() => model.pipeline.close());
    const p = model.pipeline;
    const greedy = makeSamplingParams({ temperature: 0 });
    const base = { promptLen: prompt.length, sampling: greedy, wantToken: true, wantLogits: true };
    // Never drafted: the prompt, then two one-token decode steps.
    const a0 = await p.step({ ...base, seq: 'plain', pos: 0, tokens: Int32Array.from(prompt) });
    const x = a0.token!.token;
    await p.step({ ...base, seq: 'plain', pos: 9, tokens: Int32Array.of(x) });
    const plainNext = await p.step({ ...base, seq: 'plain', pos: 10, tokens: Int32Array.of(77) });
    // Drafted: the same prompt, a verify step of x + 4 drafts, rolled back to keep only x, then 77.
    await p.step({ ...base, seq: 'spec', pos: 0, tokens: Int32Array.from(prompt) });
    const v = await p.step({ ...base, seq: 'spec', pos: 9, tokens: Int32Array.of(x, 11, 12, 13, 14), choices: 5, exact: true });
    t.equal(v.tokens?.length, 5, `${stages} stage(s): a verify step returns a choice per position`);
    t.equal(v.logits?.length, 5 * ckpt.config.vocabSize, 'and a row of logits per position');
    for (const r of model.runners) t.equal(r.engine.kvLength('spec'), 14, 'every stage holds the drafts until the next step');
    const specNext = await p.step({ ...base, seq: 'spec', pos: 10, tokens: Int32Array.of(77), rewind: true });
    for (const r of model.runners) t.equal(r.engine.kvLength('spec'), 11, 'the next step cut the rejected drafts on every stage');
    const want = referenceLogits(ckpt, [...prompt, x, 77]).at(-1)!;
    const d = maxAbsDiff(specNext.logits!, plainNext.logits!);
    // The verify chunk is exact (each position as a one-token step computes it): bit for bit.
    t.equal(d, 0, `${stages} stage(s): logits after the rollback equal the never-drafted run's bit for bit`);
    t.ok(maxAbsDiff(specNext.logits!, want) <= 1e-4, `${stages} stage(s): and the reference forward`);
    t.equal(specNext.token?.token, plainNext.token?.token, 'the same next token');
    p.free('plain');
    p.free('spec');
  }
});
