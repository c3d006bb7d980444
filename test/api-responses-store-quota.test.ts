import t from 'tap';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { createApp, DEFAULT_LIMITS, memoryResponseStore } from '../src/api/index.ts';
import { createScheduler } from '../src/scheduler/index.ts';
import { loadServedModel, tinyCheckpoint } from './helpers/hearth.ts';

// Issue 19 item 4: one client filled the whole store of responses and so evicted every other
// client's. Each API key now has its own share: a key that fills it evicts its own oldest entries
// only. And a response asked to be stored that is not (over the store's entry size) says so:
// `store: false` in the object returned (as vLLM answers when it cannot store) and, on a plain
// answer, the reason in x-hearth-not-stored. The app over real engines, with a store small enough
// to fill in a few requests (the gateway's is 64 MiB), the openai SDK as the client.

const keyA = `key-a-${randomBytes(12).toString('hex')}`;
const keyB = `key-b-${randomBytes(12).toString('hex')}`;

const served = await loadServedModel(await tinyCheckpoint('qwen3'), 1);
const scheduler = createScheduler(served.pipeline, { contextLength: served.model.contextLength, maxConcurrent: 4, maxQueue: 8 });
// 20 kB an owner, 9 kB an entry: about four responses with 4 kB of metadata each.
const app = await createApp({ model: served.model, generator: scheduler, apiKeys: [keyA, keyB], limits: DEFAULT_LIMITS, logger: false, responseStore: memoryResponseStore(20_000, { ttlMs: 60_000, maxEntryBytes: 9000 }) });
await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(async () => {
  await app.close();
  scheduler.clear();
  await served.close();
});
const addr = app.server.address() as { port: number };
const baseURL = `http://127.0.0.1:${addr.port}/v1`;
const a = new OpenAI({ apiKey: keyA, baseURL, maxRetries: 0 });
const b = new OpenAI({ apiKey: keyB, baseURL, maxRetries: 0 });
const model = served.model.id;
const metadata = (n: number, value: number, key = (i: number) => `k${i}`): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [key(i), 'm'.repeat(value)]));
const status = async (p: Promise<unknown>): Promise<number> => p.then(() => 200, (e: { status?: number }) => e.status ?? -1);

t.test("a key that fills its share evicts its own oldest responses, never another key's", async (t) => {
  const theirs = await b.responses.create({ model, input: 'Keep this.', max_output_tokens: 1 });
  const mine: string[] = [];
  for (let i = 0; i < 8; i++) mine.push((await a.responses.create({ model, input: `flood ${i}`, max_output_tokens: 1, metadata: metadata(10, 400) })).id);
  t.equal(await status(a.responses.retrieve(mine[0]!)), 404, "A's oldest was evicted");
  t.equal(await status(a.responses.retrieve(mine[7]!)), 200, "A's newest is kept");
  t.equal((await b.responses.retrieve(theirs.id)).id, theirs.id, "B's response survives A's flood");
  const next = await b.responses.create({ model, previous_response_id: theirs.id, input: 'And?', max_output_tokens: 1 });
  t.equal(next.previous_response_id, theirs.id, 'and B can still continue it');
});

t.test('a response that is not stored says so', async (t) => {
  // 16 pairs of 64-character keys and 512-character values: within OpenAI's limits, over this store's entry size.
  const big = metadata(16, 512, (i) => `${String(i).padStart(2, '0')}${'k'.repeat(62)}`);
  const { data, response } = await a.responses.create({ model, input: 'Big', max_output_tokens: 1, metadata: big }).withResponse();
  t.equal((data as unknown as { store: boolean }).store, false, 'store: false in the returned object');
  t.match(response.headers.get('x-hearth-not-stored'), /over the store's 9000 bytes an entry/, 'the header says why');
  t.equal(await status(a.responses.retrieve(data.id)), 404, 'indeed not stored');
  const small = await a.responses.create({ model, input: 'Small', max_output_tokens: 1 }).withResponse();
  t.equal((small.data as unknown as { store: boolean }).store, true, 'a stored one says store: true');
  t.equal(small.response.headers.get('x-hearth-not-stored'), null, 'and has no such header');

  const stream = await a.responses.create({ model, input: 'Big, streamed', max_output_tokens: 1, metadata: big, stream: true });
  let final: { id: string; store?: boolean } | null = null;
  for await (const ev of stream) if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response as unknown as { id: string; store?: boolean };
  t.equal(final?.store, false, 'streamed: the final response event says store: false');
  t.equal(await status(a.responses.retrieve(final!.id)), 404);
});
