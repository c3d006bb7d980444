import t from 'tap';
import { jsonResponseStore, memoryKv, memoryResponseStore, ownerShareBytes } from '../src/api/index.ts';
import { NatsBus } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { natsMissing } from './helpers/nats.ts';

// Stored Responses in NATS JetStream KV, a bucket per owner (API key hash): what one gateway stores
// another gateway of the cluster reads (previous_response_id works across gateways), but only for
// the same owner; a full bucket drops its oldest entries instead of refusing writes, and only its
// owner's; DELETE removes. The in-process store keeps the same rules.

t.test('two gateways share the JetStream KV store; each owner has its own bucket and quota', { skip: natsMissing() }, async (t) => {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const nats = await startNatsServer({ token, jetstream: true });
  t.teardown(() => nats.stop());
  const a = await NatsBus.connect({ servers: nats.url, token, name: 'gateway-a' });
  const b = await NatsBus.connect({ servers: nats.url, token, name: 'gateway-b' });
  t.teardown(async () => { await a.close(); await b.close(); });
  const opts = { ttlMs: 60_000, maxBytes: 64 * 1024, maxValueBytes: 16 * 1024 };
  const per = (bus: NatsBus) => (owner: string) => bus.openKv({ ...opts, bucket: `hearth_responses_test_${owner}` });
  const sa = jsonResponseStore(per(a), opts.maxValueBytes);
  const sb = jsonResponseStore(per(b), opts.maxValueBytes);
  const entry = { response: { id: 'resp_1', output: [{ type: 'message', content: [{ type: 'output_text', text: 'hi' }] }] }, items: [{ role: 'user', content: 'hello' }] };
  t.same(await sa.put('alice', 'resp_1', entry), { stored: true });
  t.same(await sb.get('alice', 'resp_1'), entry, 'the other gateway reads it');
  t.equal(await sb.get('bob', 'resp_1'), null, 'another owner does not');
  t.equal(await sb.delete('bob', 'resp_1'), false, 'nor deletes it');
  t.equal(await sb.get('alice', 'resp_missing'), null);
  t.match(await sa.put('alice', 'resp_big', { response: { text: 'x'.repeat(20_000) }, items: [] }), { stored: false, reason: /over the store's 16384 bytes an entry/ }, 'over the entry cap: not stored, and says why');
  t.same(await sa.put('bob', 'resp_bob', entry), { stored: true });
  // 64 KiB a bucket, ~5 KiB entries: alice's oldest go, her writes keep working, bob's stay.
  const filler = 'y'.repeat(5000);
  for (let i = 0; i < 30; i++) t.same(await sa.put('alice', `resp_f${i}`, { response: { filler }, items: [] }), { stored: true }, `write ${i} accepted`);
  t.equal(await sb.get('alice', 'resp_f0'), null, "alice's oldest entry was dropped");
  t.not(await sb.get('alice', 'resp_f29'), null, 'the newest is there');
  t.same(await sb.get('bob', 'resp_bob'), entry, "bob's entry outlives alice filling her share");
  t.equal(await sb.delete('alice', 'resp_f29'), true);
  t.equal(await sa.get('alice', 'resp_f29'), null, 'deleted for everyone');
  t.equal(await sa.delete('alice', 'resp_f29'), false);
  // Nothing but a plain id reaches a NATS subject.
  for (const id of ['*', '>', '.a', 'a b', 'resp_a.b', 'resp_*', '\u0000']) {
    t.equal(await sa.get('alice', id), null, `get ${JSON.stringify(id)}: not found`);
    t.equal(await sa.delete('alice', id), false, `delete ${JSON.stringify(id)}: not found`);
  }
  const kv = await per(a)('alice');
  for (const key of ['*', '>', 'a.b', '']) await t.rejects(kv.get(key), /kv key must match/, `NatsKv refuses the key ${JSON.stringify(key)}`);
});

t.test('the in-memory store: TTL, byte cap (oldest first), delete; one store per owner', async (t) => {
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
  const store = memoryResponseStore(3000, { ttlMs: 60_000, maxEntryBytes: 2000 });
  const e = (n: number) => ({ response: { pad: 'p'.repeat(n) }, items: [] });
  t.same(await store.put('bob', 'resp_b', e(100)), { stored: true });
  for (let i = 0; i < 10; i++) await store.put('alice', `resp_a${i}`, e(900));
  t.equal(await store.get('alice', 'resp_a0'), null, "alice's oldest went");
  t.not(await store.get('alice', 'resp_a9'), null);
  t.not(await store.get('bob', 'resp_b'), null, "bob's stays");
  t.equal(await store.get('alice', 'resp_b'), null, "alice does not see bob's");
  t.equal(ownerShareBytes(2, { maxBytes: 64 << 20, maxEntryBytes: 1 << 20 }), 32 << 20, 'two keys: half each');
  t.equal(ownerShareBytes(0, { maxBytes: 64 << 20, maxEntryBytes: 1 << 20 }), 64 << 20, 'auth off: one owner, all of it');
  t.equal(ownerShareBytes(1000, { maxBytes: 64 << 20, maxEntryBytes: 1 << 20 }), 4 << 20, 'many keys: room for 4 entries each');
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
  const kvOpts = { ttlMs: 60_000, maxBytes: 1 << 20, maxValueBytes: 64 * 1024 };
  const gateway = async (name: string): Promise<import('fastify').FastifyInstance> => {
    const bus = await NatsBus.connect({ servers: nats.url, token, name });
    const app = await createApp({ model: served.model, generator: scheduler, apiKeys: [], limits: DEFAULT_LIMITS, logger: false, responseStore: jsonResponseStore((owner) => bus.openKv({ ...kvOpts, bucket: `hearth_responses_two_${owner}` })) });
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
