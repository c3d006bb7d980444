// Speculative decoding over 2 real worker processes and a real nats-server: the verify step's
// choices travel in the result, the rollback rides on the next step (StepMsg.rewind), and with
// speculation on decoding switches between verify steps and chained bursts (issue 10's two-hop
// path) — the tokens are still exactly those of decoding without speculation (which chains every
// step), greedy and seeded, unconstrained and under json_schema.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConstraint } from '../src/chat/constraint/index.ts';
import { withinVocab } from '../src/api/chat-route.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { makeSamplingParams } from '../src/sampling/index.ts';
import type { GenerateRequest } from '../src/scheduler/types.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { gateway } from './helpers/cluster.ts';
import { natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';
import { collect, oracleDrafter } from './helpers/speculate.ts';

const skip = natsMissing();

t.test('speculation over 2 workers gives the tokens decoding without it gives', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-spec-cluster-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset: 'tiny-llama', seed: 11 });
  const tokenizer = await loadTokenizer(dir);
  const nats = await withNats(t);
  const { pipeline } = await gateway(t, nats.url, nats.token, dir);
  for (const name of ['w1', 'w2']) spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', dir, '--threads', '1', '--speed', '10', '--memory', '1G']);
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 90_000, 'a live 2-stage plan');

  const unit = [500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511];
  const prompt = Int32Array.from([...unit, ...unit, ...unit, 500, 501]);
  for (const [label, sampling] of [['greedy', makeSamplingParams({ temperature: 0 })], ['seeded sampling', makeSamplingParams({ temperature: 0.8, seed: 1234 })]] as const) {
    const req: GenerateRequest = { id: 'c', prompt, maxTokens: 24, sampling, stopTokens: [] };
    const plain = await collect(pipeline, req, false);
    t.equal(plain.tokens.length, 24, `${label}: 24 tokens without speculation`);
    const lookup = await collect(pipeline, req, true);
    t.same(lookup.tokens, plain.tokens, `${label}, prompt lookup: the same tokens (${lookup.drafted} drafted, ${lookup.accepted} accepted)`);
    const oracle = await collect(pipeline, req, true, oracleDrafter(prompt.length, plain.tokens));
    t.same(oracle.tokens, plain.tokens, `${label}, oracle drafts: the same tokens`);
    t.ok(oracle.accepted > 0 && oracle.accepted < oracle.drafted, `${label}, oracle drafts: ${oracle.drafted} drafted, ${oracle.accepted} accepted, ${oracle.passes} passes`);
  }
  const schema = { type: 'object', properties: { unit: { const: 'celsius' }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['unit', 'days'], additionalProperties: false };
  const json = (): GenerateRequest => ({
    id: 'j', prompt, maxTokens: 24, sampling: makeSamplingParams({ temperature: 0 }), stopTokens: tokenizer.eosTokenIds,
    constraint: withinVocab(createConstraint({ kind: 'json_schema', schema, maxTokens: 24 }, tokenizer), tokenizer.vocabSize),
  });
  const plainJ = await collect(pipeline, json(), false);
  const specJ = await collect(pipeline, json(), true);
  t.same(specJ.tokens, plainJ.tokens, `json_schema: the same tokens (${tokenizer.decode(specJ.tokens)})`);
  t.ok(specJ.accepted > 0, `json_schema: ${specJ.drafted} drafted, ${specJ.accepted} accepted, ${specJ.passes} passes for ${specJ.tokens.length} tokens`);
});
