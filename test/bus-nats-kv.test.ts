import t from 'tap';
import { jsonResponseStore, memoryKv } from '../src/api/index.ts';
import { NatsBus } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { natsMissing } from './helpers/nats.ts';

// Stored Responses in NATS JetStream KV: what one gateway stores another gateway of the cluster
// reads (previous_response_id works across gateways); a full bucket drops its oldest entries
// instead of refusing writes; DELETE removes. The in-process store keeps the same rules.

t.test('two gateways share the JetStream KV store', { skip: natsMissing() }, async (t) => {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const nats = await startNatsServer({ token, jetstream: true });
  t.teardown(() => nats.stop());
  const a = await NatsBus.connect({ servers: nats.url, token, name: 'gateway-a' });
  const b = await NatsBus.connect({ servers: nats.url, token, name: 'gateway-b' });
  t.teardown(async () => { await a.close(); await b.close(); });
  const opts = { bucket: 'hearth_responses_test', ttlMs: 60_000, maxBytes: 64 * 1024, maxValueBytes: 16 * 1024 };
  const sa = jsonResponseStore(await a.openKv(opts), opts.maxValueBytes);
  const sb = jsonResponseStore(await b.openKv(opts), opts.maxValueBytes);
  const entry = { response: { id: 'resp_1', output: [{ type: 'message', content: [{ type: 'output_text', text: 'hi' }] }] }, items: [{ role: 'user', content: 'hello' }] };
  t.equal(await sa.put('resp_1', entry), true);
  t.same(await sb.get('resp_1'), entry, 'the other gateway reads it');
  t.equal(await sb.get('resp_missing'), null);
  t.equal(await sa.put('resp_big', { response: { text: 'x'.repeat(20_000) }, items: [] }), false, 'over the entry cap: not stored');
  // 64 KiB bucket, ~5 KiB entries: the oldest go, writes keep working.
  const filler = 'y'.repeat(5000);
  for (let i = 0; i < 30; i++) t.equal(await sa.put(`resp_f${i}`, { response: { filler }, items: [] }), true, `write ${i} accepted`);
  t.equal(await sb.get('resp_f0'), null, 'the oldest entry was dropped');
  t.not(await sb.get('resp_f29'), null, 'the newest is there');
  t.equal(await sb.delete('resp_f29'), true);
  t.equal(await sa.get('resp_f29'), null, 'deleted for everyone');
  t.equal(await sa.delete('resp_f29'), false);
});

t.test('the in-memory store: TTL, byte cap (oldest first), delete', async (t) => {
  const kv = memoryKv({ ttlMs: 50, maxBytes: 100 });
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  await kv.put('a', enc('x'.repeat(60)));
  await kv.put('b', enc('y'.repeat(30)));
  t.not(await kv.get('a'), null);
  await kv.put('c', enc('z'.repeat(30)));
  t.equal(await kv.get('a'), null, 'over 100 bytes: the oldest went');
  t.not(await kv.get('b'), null);
  t.equal(await kv.delete('b'), true);
  t.equal(await kv.delete('b'), false);
  await new Promise((r) => setTimeout(r, 80));
  t.equal(await kv.get('c'), null, 'expired after the TTL');
});

t.test('a response stored through one gateway is continued and read through another', { skip: natsMissing() }, async (t) => {
  const { createApp, DEFAULT_LIMITS } = await import('../src/api/index.ts');
  const { createScheduler } = await import('../src/scheduler/index.ts');
  const { loadServedModel, tinyCheckpoint } = await import('./helpers/hearth.ts');
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const nats = await startNatsServer({ token, jetstream: true });
  t.teardown(() => nats.stop());
  const served = await loadServedModel(await tinyCheckpoint('qwen3'), 1);
  const scheduler = createScheduler(served.pipeline, { contextLength: served.model.contextLength, maxConcurrent: 4, maxQueue: 4 });
  t.teardown(async () => { scheduler.clear(); await served.close(); });
  const kvOpts = { bucket: 'hearth_responses_two', ttlMs: 60_000, maxBytes: 1 << 20, maxValueBytes: 64 * 1024 };
  const gateway = async (name: string): Promise<import('fastify').FastifyInstance> => {
    const bus = await NatsBus.connect({ servers: nats.url, token, name });
    const app = await createApp({ model: served.model, generator: scheduler, apiKeys: [], limits: DEFAULT_LIMITS, logger: false, responseStore: jsonResponseStore(await bus.openKv(kvOpts)) });
    t.teardown(async () => { await app.close(); await bus.close(); });
    return app;
  };
  const [a, b] = [await gateway('gw-a'), await gateway('gw-b')];
  const first = await a.inject({ method: 'POST', url: '/v1/responses', payload: { model: served.model.id, input: 'Hello', max_output_tokens: 4, seed: 1 } });
  t.equal(first.statusCode, 200);
  const id = (first.json() as { id: string }).id;
  const got = await b.inject({ method: 'GET', url: `/v1/responses/${id}` });
  t.equal(got.statusCode, 200, 'gateway B finds what gateway A stored');
  t.same(got.json(), first.json());
  const next = await b.inject({ method: 'POST', url: '/v1/responses', payload: { model: served.model.id, previous_response_id: id, input: 'And then?', max_output_tokens: 4, seed: 1 } });
  t.equal(next.statusCode, 200, 'and continues the conversation');
  const usage = (next.json() as { usage: { input_tokens: number } }).usage;
  t.ok(usage.input_tokens > (first.json() as { usage: { input_tokens: number } }).usage.input_tokens + 4, 'with the earlier turn in its prompt');
  t.equal((await a.inject({ method: 'DELETE', url: `/v1/responses/${id}` })).statusCode, 200);
  t.equal((await b.inject({ method: 'GET', url: `/v1/responses/${id}` })).statusCode, 404, 'deleted everywhere');
});
