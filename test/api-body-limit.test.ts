import OpenAI from 'openai';
import t from 'tap';
import { startHearth } from './helpers/hearth.ts';

// A body over limits.bodyBytes is answered with 413 after the client has sent it, so fetch-based
// clients read the 413 instead of failing with EPIPE / "Connection error" (and retrying).

const h = await startHearth(t, { workers: 1, inProcess: true, limits: { bodyBytes: 64 * 1024 } });
const big = 'x'.repeat(5 * 1024 * 1024);

t.test('fetch with a 5 MB body reads the 413 and its error body', async (t) => {
  for (const path of ['/v1/chat/completions', '/v1/responses']) {
    const r = await fetch(`${h.origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${h.apiKey}` },
      body: JSON.stringify({ model: h.modelId, messages: [{ role: 'user', content: big }], input: big }),
    });
    t.equal(r.status, 413, path);
    const body = (await r.json()) as { error: { message: string } };
    t.match(body.error.message, /larger than 65536 bytes/);
  }
});

t.test('the openai SDK gets an APIError with status 413, not a connection error', async (t) => {
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0 });
  const err = await client.chat.completions.create({ model: h.modelId, messages: [{ role: 'user', content: big }] }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof OpenAI.APIError, String(err));
  t.equal((err as { status?: number }).status, 413);
});

t.test('Anthropic routes answer the 413 in their own error shape, and the server stays up', async (t) => {
  const r = await fetch(`${h.origin}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': h.apiKey },
    body: JSON.stringify({ model: h.modelId, max_tokens: 4, messages: [{ role: 'user', content: big }] }),
  });
  t.equal(r.status, 413);
  t.same(((await r.json()) as { error: { type: string } }).error.type, 'request_too_large');
  const ok = await fetch(`${h.origin}/health`);
  t.equal(ok.status, 200);
});

t.test('a chunked body (no content-length) over the limit: 413 too', async (t) => {
  const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent === 0) c.enqueue(new TextEncoder().encode(`{"model":"${h.modelId}","messages":[{"role":"user","content":"`));
      if (sent >= 5 * 1024 * 1024) {
        c.enqueue(new TextEncoder().encode('"}]}'));
        c.close();
        return;
      }
      c.enqueue(chunk);
      sent += chunk.length;
    },
  });
  const r = await fetch(`${h.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${h.apiKey}` }, body: stream, duplex: 'half' } as RequestInit);
  t.equal(r.status, 413);
  t.equal(sent >= 5 * 1024 * 1024, true, 'the whole body was sent');
});
