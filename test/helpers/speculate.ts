// Shared by scheduler-speculate*.test.ts: speculation on and off give the same tokens.
import { makeSamplingParams } from '../../src/sampling/index.ts';
import type { SamplingParams } from '../../src/sampling/types.ts';
import { DEFAULT_SPECULATE_OPTIONS, createScheduler } from '../../src/scheduler/index.ts';
import type { GenerateRequest, Pipeline, TokenConstraint } from '../../src/scheduler/types.ts';
import { createConstraint } from '../../src/chat/constraint/index.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';
import { loadLocalModel } from '../../src/cli/local-model.ts';
import { withinVocab } from '../../src/api/chat-route.ts';

/** The part of tap's Test these cases use. */
interface Tap {
  same(a: unknown, b: unknown, msg: string): unknown;
  equal(a: unknown, b: unknown, msg: string): unknown;
  ok(v: unknown, msg: string): unknown;
  teardown(fn: () => unknown): void;
}

type Drafter = (tokens: Int32Array, total: number, max: number) => readonly number[];

let runs = 0;

export async function collect(p: Pipeline, req: GenerateRequest, speculate: boolean, drafter?: Drafter): Promise<{ tokens: number[]; reason: string; drafted: number; accepted: number; passes: number }> {
  // Fixed draft lengths: adaptive k follows measured timings, which would make what is drafted
  // (and so which paths a test exercises) vary from run to run.
  const opts = { ...DEFAULT_SPECULATE_OPTIONS, adaptive: false, ...(drafter === undefined ? {} : { drafter }) };
  const s = createScheduler(p, { prefixCache: 0, prefillChunk: 32, ...(speculate ? { speculate: opts } : {}) });
  const tokens: number[] = [];
  let reason = '';
  // Sequence ids are per scheduler: a fresh request id keeps them unique across schedulers (the
  // workers drop steps of a sequence id they were told to free).
  for await (const ev of s.generate({ ...req, id: `${req.id}-${runs++}` })) {
    if (ev.type === 'token') tokens.push(ev.token.token);
    else reason = ev.reason;
  }
  const st = s.speculation();
  return { tokens, reason, drafted: st.drafted, accepted: st.accepted, passes: st.passes };
}

/** Drafts the known continuation, with every 5th generated position wrong. */
export function oracleDrafter(promptLen: number, answer: readonly number[]): Drafter {
  return (_tokens, total, max) => {
    const out: number[] = [];
    for (let i = total - promptLen; i < answer.length && out.length < max; i++) out.push(i % 5 === 4 ? answer[i]! + 1 : answer[i]!);
    return out;
  };
}

export async function identical(t: Tap, dir: string, stageCounts: readonly number[]): Promise<void> {
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
  for (const stages of stageCounts) {
    const model = await loadLocalModel(dir, { stages, threads: 1 });
    t.teardown(() => model.pipeline.close());
    for (const [label, sampling] of samplings) {
      const req: GenerateRequest = { id: `u${stages}`, prompt, maxTokens: 16, sampling, stopTokens: [] };
      const plain = await collect(model.pipeline, req, false);
      const spec = await collect(model.pipeline, req, true);
      t.same(spec.tokens, plain.tokens, `${stages} stage(s), ${label}: the same ${plain.tokens.length} tokens`);
      t.equal(spec.reason, plain.reason, "the same finish reason");
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
      t.equal(specJ.reason, plainJ.reason, "the same finish reason");
      t.ok(specJ.drafted > 0 && specJ.passes < specJ.tokens.length, `${stages} stage(s), ${label}, json_schema: ${specJ.drafted} drafted, ${specJ.accepted} accepted, ${specJ.passes} passes`);
      JSON.parse(tokenizer.decode(specJ.tokens));
    }
    t.ok(model.runners.every((r) => r.engine.kvBytes() === 0), `${stages} stage(s): no KV left behind`);
  }
}
