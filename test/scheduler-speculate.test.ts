// Speculative decoding is exact: greedy and seeded sampling give token for token what decoding
// without speculation gives, on 1, 2 and 3 in-process stages, unconstrained and under json_schema
// (real shard engines in fp32, the real Qwen3 tokenizer and constraint). Drafts come from prompt
// lookup and grammar jump-forward; the counters show drafts were both accepted and rejected, so
// the accept path and the rollback (rewind on the next step) both ran. And the KV after a
// rollback equals the KV of a run that never drafted: the next step's logits match.
import t from 'tap';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { referenceLogits } from '../src/model/reference.ts';
import { makeSamplingParams } from '../src/sampling/index.ts';
import type { SamplingParams } from '../src/sampling/types.ts';
import { DEFAULT_SPECULATE_OPTIONS, createScheduler, lookupDraft } from '../src/scheduler/index.ts';
import type { GenerateRequest, Pipeline, TokenConstraint } from '../src/scheduler/types.ts';
import { createConstraint } from '../src/chat/constraint/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { maxAbsDiff } from './helpers/runtime-exact.ts';
import { withinVocab } from '../src/api/chat-route.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-spec-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

type Drafter = (tokens: Int32Array, total: number, max: number) => readonly number[];

async function collect(p: Pipeline, req: GenerateRequest, speculate: boolean, drafter?: Drafter): Promise<{ tokens: number[]; reason: string; drafted: number; accepted: number; passes: number }> {
  const opts = { ...DEFAULT_SPECULATE_OPTIONS, ...(drafter === undefined ? {} : { drafter }) };
  const s = createScheduler(p, { prefixCache: 0, prefillChunk: 32, ...(speculate ? { speculate: opts } : {}) });
  const tokens: number[] = [];
  let reason = '';
  for await (const ev of s.generate(req)) {
    if (ev.type === 'token') tokens.push(ev.token.token);
    else reason = ev.reason;
  }
  const st = s.speculation();
  return { tokens, reason, drafted: st.drafted, accepted: st.accepted, passes: st.passes };
}

/** Drafts the known continuation, with every 5th generated position wrong. */
function oracleDrafter(promptLen: number, answer: readonly number[]): Drafter {
  return (tokens, total, max) => {
    const out: number[] = [];
    for (let i = total - promptLen; i < answer.length && out.length < max; i++) out.push(i % 5 === 4 ? answer[i]! + 1 : answer[i]!);
    return out;
  };
}

t.test('prompt lookup drafts what followed the latest earlier occurrence of the longest suffix', async (t) => {
  const toks = Int32Array.from([1, 2, 3, 9, 1, 2, 3, 7, 8, 5, 2, 3]);
  t.same(lookupDraft(toks, toks.length, 4), [7, 8, 5, 2], 'the 2-gram [2, 3] last seen before 7');
  t.same(lookupDraft(toks, 8, 3), [9, 1, 2], 'with only a prefix of the tokens, the match before it');
  t.same(lookupDraft(Int32Array.from([4, 5, 6]), 3, 4), [], 'no earlier occurrence: no draft');
});

t.test('identical with and without speculation on 1, 2 and 3 stages', async (t) => {
  await generateCheckpoint(dir, { preset: 'tiny-llama', seed: 11 });
  const tokenizer = await loadTokenizer(dir);
  // A prompt that repeats itself, so prompt lookup finds drafts from the first step.
  const unit = [500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511];
  const prompt = Int32Array.from([...unit, ...unit, ...unit, 500, 501]);
  const schema = {
    type: 'object',
    properties: { city: { enum: ['Paris', 'London'] }, unit: { const: 'celsius' }, days: { type: 'integer', minimum: 1, maximum: 7 } },
    required: ['city', 'unit', 'days'],
    additionalProperties: false,
  };
  const samplings: [string, SamplingParams][] = [
    ['greedy', makeSamplingParams({ temperature: 0 })],
    ['seeded sampling', makeSamplingParams({ temperature: 0.8, seed: 1234 })],
  ];
  for (const stages of [1, 2, 3]) {
    const model = await loadLocalModel(dir, { stages, threads: 1 });
    t.teardown(() => model.pipeline.close());
    for (const [label, sampling] of samplings) {
      const req: GenerateRequest = { id: `u${stages}`, prompt, maxTokens: 30, sampling, stopTokens: [] };
      const plain = await collect(model.pipeline, req, false);
      const spec = await collect(model.pipeline, req, true);
      t.same(spec.tokens, plain.tokens, `${stages} stage(s), ${label}: the same ${plain.tokens.length} tokens`);
      t.equal(spec.reason, plain.reason);
      // Greedy on this random model repeats tokens of the prompt, so lookup finds drafts; sampled
      // tokens from 150k ids rarely recur (the oracle below drafts for those).
      if (sampling.temperature === 0) t.ok(spec.drafted > 0, `${stages} stage(s), ${label}: ${spec.drafted} drafted, ${spec.accepted} accepted, ${spec.passes} passes for ${spec.tokens.length - 1} decoded tokens`);
      // An oracle drafter that knows the answer but gets every 5th token wrong: long accepted runs
      // and a rollback every few tokens, whatever the random model prefers.
      const oracle = oracleDrafter(prompt.length, plain.tokens);
      const spec2 = await collect(model.pipeline, req, true, oracle);
      t.same(spec2.tokens, plain.tokens, `${stages} stage(s), ${label}, oracle drafts: the same tokens`);
      t.ok(spec2.accepted > 0 && spec2.accepted < spec2.drafted && spec2.passes < spec2.tokens.length / 2,
        `${stages} stage(s), ${label}, oracle drafts: ${spec2.drafted} drafted, ${spec2.accepted} accepted, ${spec2.passes} passes`);

      const constrained = (): GenerateRequest & { constraint: TokenConstraint } => ({
        id: `j${stages}`, prompt, maxTokens: 40, sampling, stopTokens: tokenizer.eosTokenIds,
        constraint: withinVocab(createConstraint({ kind: 'json_schema', schema, maxTokens: 40 }, tokenizer), tokenizer.vocabSize),
      });
      const plainJ = await collect(model.pipeline, constrained(), false);
      const specJ = await collect(model.pipeline, constrained(), true);
      t.same(specJ.tokens, plainJ.tokens, `${stages} stage(s), ${label}, json_schema: the same ${plainJ.tokens.length} tokens (${tokenizer.decode(plainJ.tokens)})`);
      t.equal(specJ.reason, plainJ.reason);
      t.ok(specJ.drafted > 0 && specJ.passes < specJ.tokens.length, `${stages} stage(s), ${label}, json_schema: ${specJ.drafted} drafted, ${specJ.accepted} accepted, ${specJ.passes} passes`);
      JSON.parse(tokenizer.decode(specJ.tokens));
    }
    t.ok(model.runners.every((r) => r.engine.kvBytes() === 0), `${stages} stage(s): no KV left behind`);
  }
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
    const v = await p.step({ ...base, seq: 'spec', pos: 9, tokens: Int32Array.of(x, 11, 12, 13, 14), choices: 5 });
    t.equal(v.tokens?.length, 5, `${stages} stage(s): a verify step returns a choice per position`);
    t.equal(v.logits?.length, 5 * ckpt.config.vocabSize, 'and a row of logits per position');
    for (const r of model.runners) t.equal(r.engine.kvLength('spec'), 14, 'every stage holds the drafts until the next step');
    const specNext = await p.step({ ...base, seq: 'spec', pos: 10, tokens: Int32Array.of(77), rewind: true });
    for (const r of model.runners) t.equal(r.engine.kvLength('spec'), 11, 'the next step cut the rejected drafts on every stage');
    const want = referenceLogits(ckpt, [...prompt, x, 77]).at(-1)!;
    const d = maxAbsDiff(specNext.logits!, plainNext.logits!);
    t.ok(d <= 1e-4, `${stages} stage(s): logits after the rollback match the never-drafted run (max |diff| ${d.toExponential(2)})`);
    t.ok(maxAbsDiff(specNext.logits!, want) <= 1e-4, `${stages} stage(s): and the reference forward`);
    t.equal(specNext.token?.token, plainNext.token?.token, 'the same next token');
    p.free('plain');
    p.free('spec');
  }
});
