// Issue 8, defects 1, 2 and 4, end to end: a real gateway, real worker processes and a real
// nats-server, driven with the openai SDK.
//   1. An oversized logit_bias is a 400 naming the parameter, and the gateway keeps serving.
//   2. Requests aborted by their clients while queued give their slot back: idle, /metrics shows
//      0 running sequences and a new request completes.
//   4. A request with n choices holds at most its share of the slots: a 1-token request finishes
//      while the big one is still early in its generation.
import t from 'tap';
import OpenAI from 'openai';
import { eventually, startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';

const skip = natsMissing();

t.test('defects 1, 2, 4 on a live cluster', { skip }, async (t) => {
  const dir = await tinyCheckpoint('qwen3');
  // 4 slots: one request's share is 2.
  const c = await startCluster(t, dir, { workers: 2, limits: { maxConcurrentSequences: 4, maxQueue: 64 } });
  const client = new OpenAI({ baseURL: c.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  const model = 'tiny-qwen3';
  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
  const idle = async (): Promise<void> => {
    await eventually(async () => c.gateway.scheduler.load().running === 0 && (await c.metric('hearth_running_sequences')) === 0, 10_000, 'hearth_running_sequences 0');
  };
  const oneAnswer = async (): Promise<void> => {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 3, temperature: 0 });
    t.equal(r.choices[0]?.finish_reason, 'length', 'a plain request is answered');
  };

  await t.test('1: logit_bias is bounded like OpenAI bounds it (400 naming the param)', async (t) => {
    const bias = (n: number, value = 1, from = 0): Record<string, number> => Object.fromEntries(Array.from({ length: n }, (_, i) => [String(from + i), value]));
    const refused = async (logit_bias: Record<string, number>, why: string, message: RegExp): Promise<void> => {
      const err = await client.chat.completions.create({ model, messages, max_tokens: 2, logit_bias }).then(() => null, (e: unknown) => e);
      t.ok(err instanceof OpenAI.BadRequestError, `${why}: ${String(err)}`);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      t.equal(e.status, 400, why);
      t.equal(e.param, 'logit_bias', `${why}: names the param`);
      t.equal(e.type, 'invalid_request_error', why);
      t.match(e.message, message, why);
    };
    // 65,536 entries made the step message unencodable; its pending step's rejection later went
    // unhandled and ended the process.
    await refused(bias(65_536), '65,536 entries', /at most 300 entries/);
    await refused(bias(301), '301 entries', /at most 300 entries/);
    await refused(bias(1, 101), 'a bias of 101', /100/);
    await refused(bias(1, 1, 10_000_000), 'a token id past the vocabulary', /token id/);
    const r = await client.chat.completions.create({ model, messages, max_tokens: 2, temperature: 0, logit_bias: bias(300, -100) });
    t.equal(r.choices[0]?.finish_reason, 'length', '300 entries are accepted and served');
    await oneAnswer();
    t.equal(await c.metric('hearth_errors_total', 'code="HEARTH_ERR_INTERNAL"'), 0, 'no escaped rejection or exception');
  });

  await t.test('2: requests aborted while queued give their slots back', async (t) => {
    // Four long streams take every slot; 8 more wait, and their clients give up.
    const holders = Array.from({ length: 4 }, () => new AbortController());
    const streams = await Promise.all(holders.map((ac, i) =>
      client.chat.completions.create({ model, messages: [{ role: 'user', content: `story ${i}` }], max_tokens: 4000, stream: true }, { signal: ac.signal })));
    const draining = streams.map(async (s) => {
      try {
        for await (const _ of s) { /* keep reading */ }
      } catch {
        // aborted below
      }
    });
    const queued = Array.from({ length: 8 }, () => new AbortController());
    const waits = queued.map((ac) => client.chat.completions.create({ model, messages, max_tokens: 2, stream: true }, { signal: ac.signal }).then(() => 'answered', (e: unknown) => (e instanceof OpenAI.APIUserAbortError ? 'aborted' : String(e))));
    await eventually(async () => c.gateway.scheduler.load().waiting === 8, 20_000, '8 requests queued');
    t.equal(c.gateway.scheduler.load().running, 4, 'every slot is taken');
    for (const ac of queued) ac.abort();
    t.same(await Promise.all(waits), queued.map(() => 'aborted'), 'the queued clients gave up');
    await eventually(async () => c.gateway.scheduler.load().waiting === 0, 10_000, 'the aborted requests leave the queue');
    // Now the running ones end too (their clients go away); each freed slot used to be handed to
    // an aborted waiter and was never seen again.
    for (const ac of holders) ac.abort();
    await Promise.all(draining);
    await idle();
    t.pass('idle: hearth_running_sequences 0');
    await oneAnswer();
  });

  await t.test('4: n choices hold at most their share; a 1-token request is not starved', async (t) => {
    const n = 4;
    // Long enough that the small request's own latency (HTTP, template, prefill: ~100 ms on a loaded CI
    // machine, when 48 tokens a choice once streamed 99 of 192 by then) is a small part of it.
    const maxTokens = 300;
    const big = await client.chat.completions.create({ model, messages, n, max_tokens: maxTokens, temperature: 0, stream: true });
    let bigTokens = 0;
    let bigDone = false;
    let firstToken!: () => void;
    const started = new Promise<void>((r) => { firstToken = r; });
    const finishes: string[] = [];
    const reading = (async () => {
      for await (const chunk of big) {
        for (const ch of chunk.choices) {
          if (ch.delta.content) { bigTokens++; firstToken(); }
          if (ch.finish_reason !== null) finishes.push(ch.finish_reason);
        }
      }
      bigDone = true;
    })();
    await started;
    t.equal(c.gateway.scheduler.load().running, 2, 'the n=4 request runs 2 choices (its share of 4 slots)');
    const small = await client.chat.completions.create({ model, messages, max_tokens: 1, temperature: 0 });
    const seen = bigTokens;
    t.equal(small.usage?.completion_tokens, 1, 'the small request completed');
    t.notOk(bigDone, 'while the big request was still running');
    t.ok(seen < (n * maxTokens) / 2, `the big request had streamed ${seen} of ${n * maxTokens} tokens by then`);
    await reading;
    t.equal(finishes.length, n, 'every choice of the big request finished');
    await idle();
  });

  t.equal(await c.metric('hearth_errors_total', 'code="HEARTH_ERR_INTERNAL"'), 0, 'nothing escaped a handler');
  t.notMatch(c.log(), /keeps serving/, 'the process guard never had to act');
});
