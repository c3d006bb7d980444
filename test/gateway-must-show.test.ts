// Issue 8, "Must show", all at once on one live cluster (real nats-server, real gateway, three
// real worker processes, the openai SDK as the client): 16 streams running, 16 more queued and
// then aborted by their clients, one request with the hostile response_format pattern, one with a
// 65,536-entry logit_bias, then the worker running stage 0 killed. Every one of the 16 streams
// completes with exactly the text of an undisturbed run (greedy and seeded), and /metrics shows 0
// running sequences once they are done.
import t from 'tap';
import OpenAI from 'openai';
import { eventually, startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';

const skip = natsMissing();
const HOSTILE = '^([\\s\\S]*)*\\u0001$';
const STREAMS = 16;
const MAX_TOKENS = 96;

interface Outcome { text: string; finish: string | null; chunks: number }

t.test('16 streams survive aborted queues, a hostile pattern, a huge logit_bias and a killed worker', { skip }, async (t) => {
  const dir = await tinyCheckpoint('qwen3');
  // Three workers: the plan uses two stages and keeps one as a spare, so after the kill the
  // survivors still hold the model.
  const c = await startCluster(t, dir, { workers: 3, limits: { maxConcurrentSequences: STREAMS, maxQueue: 64 } });
  const client = new OpenAI({ baseURL: c.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
  const model = 'tiny-qwen3';
  // Even streams greedy, odd ones sampled with a seed: both must replay exactly. The seeded ones
  // sample among the top 10: this random model's full distribution is nearly flat over 151,669
  // tokens, where a last-bit difference between the replay's prefill and the original decode
  // (not the same float sums) moves the draw across a neighbouring token's sliver of probability.
  const request = (i: number) => ({
    model, messages: [{ role: 'user' as const, content: `Tell story number ${i}.` }], max_tokens: MAX_TOKENS, stream: true as const,
    ...(i % 2 === 0 ? { temperature: 0 } : { temperature: 0.9, top_k: 10, seed: 1000 + i }),
  });
  const progress = new Array<number>(STREAMS).fill(0);
  const run = async (i: number, onFirst?: () => void): Promise<Outcome> => {
    const s = await client.chat.completions.create(request(i));
    const out: Outcome = { text: '', finish: null, chunks: 0 };
    for await (const chunk of s) {
      const ch = chunk.choices[0];
      if (ch?.delta.content) { out.text += ch.delta.content; out.chunks++; progress[i] = out.chunks; onFirst?.(); }
      if (ch?.finish_reason) out.finish = ch.finish_reason;
    }
    return out;
  };

  const reference = await Promise.all(Array.from({ length: STREAMS }, (_, i) => run(i)));
  t.ok(reference.every((r) => r.finish === 'length' && r.text.length > 0), 'the undisturbed run: 16 full-length texts');
  t.ok(new Set(reference.map((r) => r.text)).size > STREAMS / 2, 'and they differ from each other');
  await eventually(async () => c.gateway.scheduler.load().running === 0, 10_000, 'idle after the reference run');

  // 16 streams running.
  progress.fill(0);
  let started = 0;
  let allStarted!: () => void;
  const running = new Promise<void>((r) => { allStarted = r; });
  const streams = Array.from({ length: STREAMS }, (_, i) => {
    let first = true;
    return run(i, () => { if (first) { first = false; if (++started === STREAMS) allStarted(); } });
  });
  await running;
  t.equal(c.gateway.scheduler.load().running, STREAMS, '16 streams running: every slot taken');

  // 16 more queue up behind them, and their clients give up.
  const quitters = Array.from({ length: STREAMS }, () => new AbortController());
  const queued = quitters.map((ac, i) => client.chat.completions.create(request(i), { signal: ac.signal })
    .then(() => 'answered', (e: unknown) => (e instanceof OpenAI.APIUserAbortError ? 'aborted' : String(e))));
  await eventually(async () => c.gateway.scheduler.load().waiting === STREAMS, 20_000, '16 requests queued');
  for (const ac of quitters) ac.abort();
  t.same(await Promise.all(queued), quitters.map(() => 'aborted'), '16 queued clients gave up');
  await eventually(async () => c.gateway.scheduler.load().waiting === 0, 10_000, 'the queue to empty');

  // The hostile pattern: answered or refused, never holding the event loop. It waits for a slot
  // like any request; the gateway answers others meanwhile.
  let hostileSettled = false;
  const hostile = fetch(`${c.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 60, seed: 7,
      response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'string', pattern: HOSTILE, minLength: 28, maxLength: 28 } } } }),
  }).then(async (r) => ({ status: r.status, body: await r.text() })).finally(() => { hostileSettled = true; });
  const health = await fetch(`${c.origin}/health`);
  t.equal(health.status, 200, 'the gateway answers /health while the hostile request is in');

  // The oversized logit_bias: a 400, and nothing left behind to reject later.
  const bias = Object.fromEntries(Array.from({ length: 65_536 }, (_, i) => [String(i), 1]));
  const err = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], max_tokens: 2, logit_bias: bias }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof OpenAI.BadRequestError && err.param === 'logit_bias', `a 65,536-entry logit_bias is a 400 naming logit_bias (${String(err)})`);

  // Kill the worker running stage 0 while every stream is mid-generation.
  const unfinished = progress.filter((n) => n < MAX_TOKENS).length;
  const epoch = c.gateway.pipeline.epoch();
  c.stageWorker(0).kill('SIGKILL');
  t.equal(unfinished, STREAMS, `all 16 streams were mid-generation at the kill (${progress.join(',')} of ${MAX_TOKENS} tokens)`);

  const got = await Promise.all(streams);
  t.ok(c.gateway.pipeline.epoch() > epoch, `re-planned (epoch ${epoch} → ${c.gateway.pipeline.epoch()})`);
  for (let i = 0; i < STREAMS; i++) {
    t.equal(got[i]!.finish, 'length', `stream ${i} finished`);
    t.equal(got[i]!.text, reference[i]!.text, `stream ${i} (${i % 2 === 0 ? 'greedy' : 'seeded'}): exactly the undisturbed text`);
  }

  const h = await hostile;
  t.ok(hostileSettled);
  t.ok(h.status === 200 || h.status === 400, `the hostile pattern: ${h.status} ${h.body.slice(0, 160)}`);
  if (h.status === 200) {
    const value = JSON.parse((JSON.parse(h.body) as { choices: { message: { content: string } }[] }).choices[0]!.message.content) as string;
    t.equal([...value].length, 28, 'and its answer has the 28 characters the schema asks for');
  }

  await eventually(async () => c.gateway.scheduler.load().running === 0 && (await c.metric('hearth_running_sequences')) === 0, 10_000, 'hearth_running_sequences 0');
  t.pass('/metrics: hearth_running_sequences 0 when done');
  t.equal(await c.metric('hearth_queue_depth'), 0, '/metrics: nothing queued');
  const after = await client.chat.completions.create({ ...request(0), stream: false });
  t.equal(after.choices[0]?.message.content, reference[0]!.text, 'a new request completes, same text');
  t.equal(await c.metric('hearth_errors_total', 'code="HEARTH_ERR_INTERNAL"'), 0, 'nothing escaped a handler');
});
