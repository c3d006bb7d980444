import t from 'tap';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 19, items 3, 4 and 8, against the gateway users run: a real nats-server with JetStream
// (stored responses live in its KV), a real worker, two API keys, the openai SDK as the client.
// - A response stored with key A does not exist for key B: not to read (its instructions), to
//   list, to continue (previous_response_id, plain and streamed) nor to delete; a 404 in the same
//   shape as an id that never existed.
// - metadata is bounded as OpenAI bounds it (a 1 MB value filled the store in 67 requests).
// - Ids that are not ids (`*`, `>`, `.a`, `a b`, NUL) are a 404, not a 500 quoting a JetStream
//   subject.

const keyA = `key-a-${randomBytes(12).toString('hex')}`;
const keyB = `key-b-${randomBytes(12).toString('hex')}`;

interface ApiErr {
  readonly status?: number;
  readonly error?: { readonly type?: string; readonly code?: string | null; readonly param?: string | null; readonly message?: string };
}

/** The error a call rejects with (fails the test when it resolves). */
async function failure(t: { fail(msg: string): unknown }, p: Promise<unknown>, what: string): Promise<ApiErr> {
  try {
    await p;
  } catch (e) {
    return e as ApiErr;
  }
  t.fail(`${what}: expected an error, got an answer`);
  return {};
}

t.test('stored responses through the NATS gateway: per key, bounded metadata, odd ids', { skip: natsMissing() }, async (t) => {
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, jetstream: true, flags: { 'server.apiKeys': `${keyA},${keyB}` } });
  const model = (await (await fetch(`${c.baseURL}/models`, { headers: { authorization: `Bearer ${keyA}` } })).json() as { data: { id: string }[] }).data[0]!.id;
  const a = new OpenAI({ apiKey: keyA, baseURL: c.baseURL, maxRetries: 0 });
  const b = new OpenAI({ apiKey: keyB, baseURL: c.baseURL, maxRetries: 0 });

  await t.test('a response stored with key A is a 404 for key B on every route', async (t) => {
    const r = await a.responses.create({ model, instructions: 'The secret word is heron.', input: 'Hello', max_output_tokens: 4 });
    t.equal((await a.responses.retrieve(r.id)).instructions, 'The secret word is heron.', 'A reads its own');
    const missing = await failure(t, b.responses.retrieve(`resp_${'Z'.repeat(29)}`), 'a missing id');
    t.equal(missing.status, 404);
    const same = (e: ApiErr, what: string): void => {
      t.equal(e.status, 404, `${what}: 404`);
      t.equal(e.error?.type, missing.error?.type, `${what}: shaped as a missing id`);
      t.equal(e.error?.code, missing.error?.code);
      t.notMatch(JSON.stringify(e.error), /heron/, `${what}: nothing of the response leaks`);
    };
    same(await failure(t, b.responses.retrieve(r.id), 'B retrieve'), 'retrieve');
    same(await failure(t, b.responses.inputItems.list(r.id), 'B input_items'), 'input_items');
    same(await failure(t, b.responses.create({ model, previous_response_id: r.id, input: 'What was the word?', max_output_tokens: 2 }), 'B continue'), 'previous_response_id');
    same(await failure(t, b.responses.create({ model, previous_response_id: r.id, input: 'What was the word?', max_output_tokens: 2, stream: true }), 'B continue streamed'), 'streamed previous_response_id');
    same(await failure(t, b.responses.delete(r.id), 'B delete'), 'delete');

    t.equal((await a.responses.retrieve(r.id)).id, r.id, "B's delete removed nothing");
    const listed = await a.responses.inputItems.list(r.id, { order: 'asc' });
    t.match(listed.data, [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] }], 'A lists its input items');
    const next = await a.responses.create({ model, previous_response_id: r.id, input: 'And then?', max_output_tokens: 2 });
    t.equal(next.previous_response_id, r.id, 'A continues its own');
    t.equal((await a.responses.inputItems.list(next.id, { order: 'asc' })).data.length, 3, 'the continuation lists the whole conversation (user, assistant, user)');

    // Streamed and stored by B: B's alone.
    const stream = await b.responses.create({ model, input: 'Hi', max_output_tokens: 3, stream: true });
    let sid = '';
    for await (const ev of stream) if (ev.type === 'response.completed' || ev.type === 'response.incomplete') sid = ev.response.id;
    t.ok(sid.startsWith('resp_'), 'a streamed response with an id');
    t.equal((await b.responses.retrieve(sid)).id, sid, 'B reads what B streamed');
    same(await failure(t, a.responses.retrieve(sid), 'A reads B\'s'), "A retrieving B's");

    t.ok(await a.responses.delete(r.id), 'A deletes its own');
    t.equal((await failure(t, a.responses.retrieve(r.id), 'deleted')).status, 404, 'then it is gone');
  });

  await t.test('metadata: at most 16 pairs, keys ≤ 64 characters, values ≤ 512; a 400 naming the limit', async (t) => {
    const create = (metadata: Record<string, string>) => a.responses.create({ model, input: 'x', max_output_tokens: 1, metadata });
    const pairs = (n: number, key = (i: number) => `k${i}`, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, i) => [key(i), value]));
    const big = await failure(t, create({ blob: 'x'.repeat(1 << 20) }), '1 MB of metadata');
    t.equal(big.status, 400, 'the 1 MB value of the issue is refused');
    t.match(big.error, { param: 'metadata.blob', message: /maximum length 512, but got a string with length 1048576/ });
    const many = await failure(t, create(pairs(17)), '17 pairs');
    t.equal(many.status, 400);
    t.match(many.error, { param: 'metadata', message: /at most 16 properties, but got an object with 17/ });
    const longKey = await failure(t, create({ ['k'.repeat(65)]: 'v' }), 'a 65-character key');
    t.equal(longKey.status, 400);
    t.match(longKey.error?.message, /keys of at most 64 characters, but got 65/);
    const ok = await create(pairs(16, (i) => `${String(i).padStart(2, '0')}${'k'.repeat(62)}`, 'v'.repeat(512)));
    t.equal(Object.keys(ok.metadata ?? {}).length, 16, 'the limits themselves are allowed');
    t.equal((ok as unknown as { store: boolean }).store, true);
  });

  await t.test('ids that are not ids: a 404 on every route, no JetStream subject in it', async (t) => {
    const auth = { authorization: `Bearer ${keyA}` };
    const headers = { ...auth, 'content-type': 'application/json' };
    for (const raw of ['*', '>', '.a', 'a b', '%00', 'resp_*', 'resp_a.b', 'resp_%3E', '$KV']) {
      const seg = raw === '%00' ? raw : encodeURIComponent(raw);
      for (const [method, path] of [['GET', `/v1/responses/${seg}`], ['GET', `/v1/responses/${seg}/input_items`], ['DELETE', `/v1/responses/${seg}`]] as const) {
        const res = await fetch(`${c.origin}${path}`, { method, headers: auth });
        const text = await res.text();
        t.equal(res.status, 404, `${method} ${path}: 404`);
        t.match(JSON.parse(text), { error: { type: 'invalid_request_error', param: 'response_id' } }, `${method} ${path}: OpenAI-shaped`);
        t.notMatch(text, /\$KV\.|\$JS\.|hearth_responses/, `${method} ${path}: no internal subject`);
      }
      const res = await fetch(`${c.baseURL}/responses`, { method: 'POST', headers, body: JSON.stringify({ model, input: 'x', max_output_tokens: 1, previous_response_id: decodeURIComponent(raw) }) });
      t.equal(res.status, 404, `previous_response_id ${JSON.stringify(raw)}: 404`);
      t.notMatch(await res.text(), /\$KV\.|\$JS\.|hearth_responses/);
    }
    t.equal((await fetch(`${c.origin}/health`)).status, 200, 'the gateway is up');
  });
});
