import t from 'tap';
import { validatorFor } from '../src/api/openapi.ts';
import { startHearth } from './helpers/hearth.ts';

// Limits and failures over the real engine: 429 + Retry-After when the queue is full (other streams
// carry on), 413 over the body limit, and an engine failure after the SSE headers went out, which
// must reach the client as `data: {"error":{...}}` then `data: [DONE]`.

const h = await startHearth(t, { workers: 1, inProcess: true, limits: { maxConcurrent: 1, maxQueue: 0, bodyBytes: 64 * 1024 } });
const tok = h.local!.model.tokenizer;
const isError = validatorFor('ErrorResponse');
const headers = { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' };
const noEnd = Object.fromEntries([...tok.eosTokenIds, tok.idOf('<|im_end|>')!].map((id) => [String(id), -100]));
const body = (extra: object): string => JSON.stringify({ model: h.modelId, messages: [{ role: 'user', content: 'Go on.' }], ...extra });

t.test('queue full → 429 with Retry-After; the running stream is unharmed', async (t) => {
  const ac = new AbortController();
  const running = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: body({ stream: true, max_tokens: 60, seed: 1, logit_bias: noEnd }), signal: ac.signal });
  const reader = running.body!.getReader();
  await reader.read();
  const refused = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: body({ max_tokens: 2 }) });
  t.equal(refused.status, 429);
  t.ok(Number(refused.headers.get('retry-after')) >= 1, `Retry-After: ${refused.headers.get('retry-after')}`);
  const e = (await refused.json()) as { error: { code: string; type: string } };
  t.ok(isError(e));
  t.equal(e.error.code, 'rate_limit_exceeded');
  const refusedStream = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: body({ stream: true, max_tokens: 2 }) });
  t.equal(refusedStream.status, 429, 'a stream refused before it starts is a plain 429');
  // The first stream runs to its end.
  const dec = new TextDecoder();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  t.match(text, /"finish_reason":"length"/);
  t.match(text, /data: \[DONE\]\n\n$/);
  const after = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: body({ max_tokens: 2 }) });
  t.equal(after.status, 200, 'served once the slot is free');
});

t.test('body over the limit → 413', async (t) => {
  const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: body({ pad: 'x'.repeat(70 * 1024) }) });
  t.equal(r.status, 413);
  const e = (await r.json()) as { error: { message: string } };
  t.ok(isError(e));
  t.match(e.error.message, /65536/);
});

t.test('malformed JSON → 400 invalid_request_error', async (t) => {
  const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: '{"model": "x",' });
  t.equal(r.status, 400);
  const e = (await r.json()) as { error: { type: string; message: string } };
  t.equal(e.error.type, 'invalid_request_error');
  t.match(e.error.message, /parse the JSON/);
});

t.test('an engine failure mid-stream becomes an error event, then [DONE]', async (t) => {
  const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers, body: body({ stream: true, max_tokens: 400, seed: 2, logit_bias: noEnd }) });
  t.equal(r.status, 200);
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let text = dec.decode((await reader.read()).value);
  // Pull the engine out from under the running sequence (what a crashed stage looks like here).
  await h.local!.breakPipeline();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  const events = text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
  t.equal(events.at(-1), '[DONE]', 'ends with [DONE]');
  const err = JSON.parse(events.at(-2)!) as unknown;
  t.ok(isError(err), `error event: ${events.at(-2)}`);
  t.notOk(text.includes('event:'), 'a plain data event, not a named one');
  const health = await fetch(`${h.origin}/health`);
  t.equal(health.status, 200, 'the server stays up');
});
