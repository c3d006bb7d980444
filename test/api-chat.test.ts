import t from 'tap';
import { validatorFor } from '../src/api/openapi.ts';
import { openCheckpoint, referenceGreedy } from '../src/model/index.ts';
import { startHearth } from './helpers/hearth.ts';

// /v1/chat/completions over the real engine (in-process pipeline of 2 shard engines), checked
// against independent computations: greedy text against the TypeScript reference forward pass,
// streamed against non-streamed, n choices against single requests with seed+i, token counts
// against the tokenizer, every body against the OpenAPI document's response schemas.

const h = await startHearth(t, { workers: 2, inProcess: true });
const { model } = h.local!;
const tok = model.tokenizer;
const isResponse = validatorFor('CreateChatCompletionResponse');
const isChunk = validatorFor('CreateChatCompletionStreamResponse');
const isError = validatorFor('ErrorResponse');

type Json = Record<string, any>;

async function post(body: Json, path = '/chat/completions'): Promise<{ status: number; body: Json; headers: Headers }> {
  const r = await fetch(`${h.baseURL}${path}`, { method: 'POST', headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Json, headers: r.headers };
}

/** Reads an SSE response into its data payloads (parsed JSON, or the string "[DONE]"). */
async function stream(body: Json, path = '/chat/completions'): Promise<{ status: number; events: (Json | '[DONE]')[]; type: string }> {
  const r = await fetch(`${h.baseURL}${path}`, { method: 'POST', headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  const text = await r.text();
  const events = text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6))
    .map((d) => (d === '[DONE]' ? '[DONE]' : (JSON.parse(d) as Json)));
  return { status: r.status, events, type: r.headers.get('content-type') ?? '' };
}

const msgs = [{ role: 'user', content: 'Tell me a story.' }];

t.test('greedy text equals the reference forward pass', async (t) => {
  const r = await post({ model: h.modelId, messages: msgs, temperature: 0, max_tokens: 8, logprobs: true });
  t.equal(r.status, 200);
  t.ok(isResponse(r.body), JSON.stringify(isResponse.errors));
  const prompt = tok.encode(model.template.render([{ role: 'user', content: 'Tell me a story.' }], { addGenerationPrompt: true }));
  t.equal(r.body.usage.prompt_tokens, prompt.length, 'prompt_tokens = the rendered template, tokenized');
  const ckpt = openCheckpoint(h.modelDir);
  const stopIds = [...tok.eosTokenIds, tok.idOf('<|im_end|>')!];
  const ref = referenceGreedy(ckpt, prompt, 8, stopIds);
  ckpt.close();
  const refTokens = stopIds.includes(ref.at(-1)!) ? ref.slice(0, -1) : ref;
  t.equal(r.body.usage.completion_tokens, refTokens.length);
  t.equal(r.body.choices[0].message.content, tok.decode(refTokens, { skipSpecialTokens: true }), 'same text as the reference');
  const lp = r.body.choices[0].logprobs.content as Json[];
  t.equal(lp.length, refTokens.length, 'one logprob per token');
  t.same(lp.map((e) => e.bytes), refTokens.map((id) => Array.from(tok.tokenBytes(id))), 'bytes of each token');
  t.ok(lp.every((e) => e.logprob <= 0 && Array.isArray(e.top_logprobs) && e.top_logprobs.length === 0));
  t.equal(r.body.choices[0].finish_reason, refTokens.length === 8 ? 'length' : 'stop');
  t.match(r.body.id, /^chatcmpl-/);
  t.equal(r.body.object, 'chat.completion');
  t.equal(r.body.model, h.modelId);
  t.match(r.body.system_fingerprint, /^fp_/);
  t.equal(r.body.usage.total_tokens, r.body.usage.prompt_tokens + r.body.usage.completion_tokens);
});

t.test('streaming gives the same text as non-streaming for the same seed, in OpenAI chunk shape', async (t) => {
  const body = { model: h.modelId, messages: msgs, temperature: 1, seed: 7, max_tokens: 12, stream_options: { include_usage: true } };
  const plain = await post(body);
  const s = await stream(body);
  t.equal(s.status, 200);
  t.match(s.type, /^text\/event-stream/);
  t.equal(s.events.at(-1), '[DONE]', 'ends with [DONE]');
  const chunks = s.events.slice(0, -1) as Json[];
  t.ok(chunks.every((c) => isChunk(c)), JSON.stringify(isChunk.errors));
  t.same(chunks[0]!.choices[0].delta, { role: 'assistant', content: '', refusal: null }, 'first delta carries the role');
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  t.equal(text, plain.body.choices[0].message.content, 'same text');
  const finals = chunks.filter((c) => c.choices[0]?.finish_reason != null);
  t.equal(finals.length, 1, 'one finish chunk');
  t.equal(finals[0]!.choices[0].finish_reason, plain.body.choices[0].finish_reason);
  const last = chunks.at(-1)!;
  t.same(last.choices, [], 'usage chunk has empty choices');
  t.same(last.usage, plain.body.usage, 'same usage');
  t.ok(chunks.slice(0, -1).every((c) => c.usage === null), 'usage null on the other chunks');
  t.ok(chunks.every((c) => c.id === chunks[0]!.id), 'one id for the stream');
  const noUsage = await stream({ ...body, stream_options: undefined });
  t.ok((noUsage.events.slice(0, -1) as Json[]).every((c) => !('usage' in c)), 'no usage field unless asked');
});

t.test('n choices: choice i is the single request with seed + i', async (t) => {
  const body = { model: h.modelId, messages: msgs, seed: 100, max_tokens: 6 };
  const r = await post({ ...body, n: 3 });
  t.equal(r.status, 200, JSON.stringify(r.body).slice(0, 400));
  t.equal(r.body.choices.length, 3);
  t.same(r.body.choices.map((c: Json) => c.index), [0, 1, 2]);
  for (let i = 0; i < 3; i++) {
    const single = await post({ ...body, seed: 100 + i });
    t.equal(r.body.choices[i].message.content, single.body.choices[0].message.content, `choice ${i}`);
  }
  t.equal(r.body.usage.completion_tokens, r.body.choices.reduce((s: number, c: Json) => s + tok.encode(c.message.content).length, 0) > 0 ? r.body.usage.completion_tokens : -1);
  const s = await stream({ ...body, n: 3 });
  t.notOk(s.events.some((e) => e !== '[DONE]' && 'error' in e), JSON.stringify(s.events.find((e) => e !== '[DONE]' && 'error' in e)));
  const texts = ['', '', ''];
  for (const c of s.events.slice(0, -1) as Json[]) texts[c.choices[0].index] += c.choices[0].delta.content ?? '';
  t.same(texts, r.body.choices.map((c: Json) => c.message.content), 'streamed n choices match');
});

t.test('top_logprobs: k alternatives, sorted, the sampled token among them under greedy', async (t) => {
  const r = await post({ model: h.modelId, messages: msgs, temperature: 0, max_tokens: 5, logprobs: true, top_logprobs: 3 });
  const lp = r.body.choices[0].logprobs.content as Json[];
  t.ok(lp.length > 0);
  for (const e of lp) {
    t.equal(e.top_logprobs.length, 3);
    const lps = e.top_logprobs.map((x: Json) => x.logprob);
    t.same(lps, [...lps].sort((a: number, b: number) => b - a), 'sorted');
    t.same(e.top_logprobs[0].bytes, e.bytes, 'greedy picks the top one');
    t.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-5);
    t.ok(lps.reduce((s: number, x: number) => s + Math.exp(x), 0) <= 1 + 1e-5, 'probabilities sum ≤ 1');
  }
  t.equal(lp.map((e) => Buffer.from(e.bytes).toString('utf8')).join(''), r.body.choices[0].message.content, 'token bytes spell the content');
});

t.test('stop strings end the text before the stop, which is left out', async (t) => {
  const free = await post({ model: h.modelId, messages: msgs, temperature: 0, max_tokens: 24 });
  const text: string = free.body.choices[0].message.content;
  t.ok(text.length > 6, `greedy text: ${JSON.stringify(text)}`);
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
  const cut = text.slice(0, text.indexOf(stop));
  const r = await post({ model: h.modelId, messages: msgs, temperature: 0, max_tokens: 24, stop: [stop] });
  t.equal(r.body.choices[0].message.content, cut);
  t.equal(r.body.choices[0].finish_reason, 'stop');
  const s = await stream({ model: h.modelId, messages: msgs, temperature: 0, max_tokens: 24, stop });
  t.equal((s.events.slice(0, -1) as Json[]).map((c) => c.choices[0]?.delta.content ?? '').join(''), cut, 'streamed too');
});

t.test('a think block goes to reasoning_content, streamed and not', async (t) => {
  const think = tok.idOf('<think>')!;
  const body = { model: h.modelId, messages: msgs, max_tokens: 4, seed: 1, logit_bias: { [String(think)]: 100 } };
  const r = await post(body);
  t.equal(r.body.choices[0].message.reasoning_content, '<think>'.repeat(3), 'the first opens the block, the rest are its text');
  t.equal(r.body.choices[0].message.content, '');
  t.ok(isResponse(r.body));
  const s = await stream(body);
  const chunks = s.events.slice(0, -1) as Json[];
  t.equal(chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join(''), '<think>'.repeat(3));
  t.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), '');
  t.ok(chunks.every((c) => isChunk(c)));
});

t.test('response_format json_schema: the content parses and validates', async (t) => {
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer' }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 } }, required: ['name', 'age', 'tags'], additionalProperties: false };
  for (const seed of [1, 2, 3]) {
    const r = await post({ model: h.modelId, messages: msgs, seed, max_tokens: 80, response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } } });
    t.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    const value = JSON.parse(r.body.choices[0].message.content);
    t.same(Object.keys(value).sort(), ['age', 'name', 'tags']);
    t.ok(Number.isInteger(value.age));
    t.ok(typeof value.name === 'string' && value.name.length <= 12);
    t.ok(value.tags.length <= 3 && value.tags.every((x: string) => x === 'a' || x === 'b'));
  }
  // Keywords decoding does not enforce (numeric bounds) are checked after: valid JSON or a 422.
  const bounded = { type: 'object', properties: { n: { type: 'integer', minimum: 10, maximum: 12 } }, required: ['n'], additionalProperties: false };
  for (const seed of [1, 2, 3, 4]) {
    const r = await post({ model: h.modelId, messages: msgs, seed, max_tokens: 30, response_format: { type: 'json_schema', json_schema: { name: 'b', schema: bounded } } });
    if (r.status === 200) t.ok([10, 11, 12].includes(JSON.parse(r.body.choices[0].message.content).n), 'valid when returned');
    else t.equal(r.status, 422, 'or refused as unprocessable');
  }
  const obj = await post({ model: h.modelId, messages: msgs, seed: 5, max_tokens: 40, response_format: { type: 'json_object' } });
  const parsed = JSON.parse(obj.body.choices[0].message.content);
  t.ok(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed), 'json_object gives an object');
});

t.test('errors in OpenAI shape with the statuses the SDK maps', async (t) => {
  const bad = await post({ model: h.modelId, messages: msgs, temperature: 9 });
  t.equal(bad.status, 400);
  t.ok(isError(bad.body));
  t.equal(bad.body.error.param, 'temperature');
  t.equal(bad.body.error.type, 'invalid_request_error');
  const nf = await post({ model: 'gpt-5', messages: msgs });
  t.equal(nf.status, 404);
  t.equal(nf.body.error.code, 'model_not_found');
  const long = await post({ model: h.modelId, messages: [{ role: 'user', content: 'hello '.repeat(5000) }] });
  t.equal(long.status, 400);
  t.equal(long.body.error.code, 'context_length_exceeded');
  const sBad = await stream({ model: h.modelId, messages: msgs, n: 0 });
  t.equal(sBad.status, 400, 'a stream refused up front is a plain HTTP error');
  const noKey = await fetch(`${h.baseURL}/models`);
  t.equal(noKey.status, 401);
  t.equal(((await noKey.json()) as Json).error.code, 'invalid_api_key');
  const otherHeader = await fetch(`${h.baseURL}/models`, { headers: { 'api-key': h.apiKey } });
  t.equal(otherHeader.status, 200, 'api-key header accepted');
  t.equal((await fetch(`${h.origin}/health`)).status, 200, '/health needs no key');
  const ready = await fetch(`${h.origin}/ready`);
  t.equal(ready.status, 200);
});

t.test('models routes', async (t) => {
  const auth = { authorization: `Bearer ${h.apiKey}` };
  const list = (await (await fetch(`${h.baseURL}/models`, { headers: auth })).json()) as Json;
  t.ok(validatorFor('ListModelsResponse')(list));
  t.same(list.data.map((m: Json) => m.id), [h.modelId]);
  t.equal(list.data[0].max_model_len, model.contextLength);
  const one = await fetch(`${h.baseURL}/models/${encodeURIComponent(h.modelId)}`, { headers: auth });
  t.equal(one.status, 200);
  t.ok(validatorFor('Model')(await one.json()));
  const none = await fetch(`${h.baseURL}/models/nope`, { headers: auth });
  t.equal(none.status, 404);
  t.equal(((await none.json()) as Json).error.code, 'model_not_found');
});

t.test('client disconnect cancels the sequence', async (t) => {
  const { scheduler } = h.local!;
  const ac = new AbortController();
  const r = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: h.modelId, messages: msgs, max_tokens: 3000, stream: true, temperature: 1, seed: 3, logit_bias: Object.fromEntries(tok.eosTokenIds.concat(tok.idOf('<|im_end|>')!).map((id) => [String(id), -100])) }),
    signal: ac.signal,
  });
  const reader = r.body!.getReader();
  await reader.read();
  t.equal(scheduler.load().running, 1, 'generating');
  ac.abort();
  const until = Date.now() + 10_000;
  while (scheduler.load().running > 0 && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  t.equal(scheduler.load().running, 0, 'the sequence ended when the client left');
  const after = await post({ model: h.modelId, messages: msgs, max_tokens: 2 });
  t.equal(after.status, 200, 'the server carries on');
});

t.test('legacy completions: text, streaming, echo, logprobs', async (t) => {
  const body = { model: h.modelId, prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logprobs: 2 };
  const r = await post(body, '/completions');
  t.equal(r.status, 200);
  t.ok(validatorFor('CreateCompletionResponse')(r.body), JSON.stringify(validatorFor('CreateCompletionResponse').errors));
  const ids = tok.encode('Once upon a time', { addSpecialTokens: true });
  const ckpt = openCheckpoint(h.modelDir);
  const ref = referenceGreedy(ckpt, ids, 6, tok.eosTokenIds);
  ckpt.close();
  const refTokens = tok.eosTokenIds.includes(ref.at(-1)!) ? ref.slice(0, -1) : ref;
  t.equal(r.body.choices[0].text, tok.decode([...ids, ...refTokens], { skipSpecialTokens: true }).slice(tok.decode(ids, { skipSpecialTokens: true }).length), 'greedy continuation = reference');
  const lp = r.body.choices[0].logprobs;
  t.equal(lp.tokens.length, refTokens.length);
  t.ok(lp.top_logprobs.every((o: Json) => Object.keys(o).length >= 1 && Object.keys(o).length <= 2));
  t.same(lp.text_offset, [...lp.text_offset].sort((a: number, b: number) => a - b), 'offsets grow');
  const s = await stream(body, '/completions');
  t.equal((s.events.slice(0, -1) as Json[]).map((c) => c.choices[0]?.text ?? '').join(''), r.body.choices[0].text, 'stream = non-stream');
  const echo = await post({ ...body, logprobs: undefined, echo: true }, '/completions');
  t.equal(echo.body.choices[0].text, `Once upon a time${r.body.choices[0].text}`);
  const two = await post({ model: h.modelId, prompt: ['a', 'b'], n: 2, max_tokens: 2 }, '/completions');
  t.equal(two.status, 200, JSON.stringify(two.body).slice(0, 400));
  t.same(two.body.choices.map((c: Json) => c.index), [0, 1, 2, 3]);
});
