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
