import t from 'tap';
import { validatorFor } from '../src/api/openapi.ts';
import { startHearth } from './helpers/hearth.ts';

// ≥ 1,000 malformed or hostile requests against a real server (real tokenizer, template, scheduler
// and engine): wrong types, huge numbers, deep nesting, invalid UTF-8, enormous strings,
// prototype-pollution keys, bad headers. Every answer must be a 4xx in OpenAI's error shape: never a
// 5xx, a hang or a crash; and a normal request right after must still succeed.

const h = await startHearth(t, { workers: 1, inProcess: true, limits: { bodyBytes: 1 << 20 } });
const isError = validatorFor('ErrorResponse');

/** mulberry32: a seeded PRNG so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(20261125);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

interface Case {
  readonly name: string;
  readonly path?: string;
  readonly method?: string;
  readonly body: string | Uint8Array;
  readonly headers?: Record<string, string>;
  /** Expected status when it is known exactly. */
  readonly status?: number;
}

const good = { model: h.modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const goodCompletion = { model: h.modelId, prompt: 'Once', max_tokens: 2 };
const json = (v: unknown): string => JSON.stringify(v);
const nest = (depth: number, leaf: unknown, arr = true): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = arr ? [v] : { a: v };
  return v;
};
/** Deep nesting as raw text (JSON.stringify itself would recurse). */
const nestText = (depth: number, open: string, close: string, leaf = '1'): string => open.repeat(depth) + leaf + close.repeat(depth);

const wrongValues: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, 'x', '', [], [1], {}, { a: 1 }, [[[]]], '\u0000', '💥'.repeat(50),
];
const hugeNumbers = ['1e400', '-1e400', '1' + '0'.repeat(400), '123456789012345678901234567890', '-0', '1e-400', '9'.repeat(5000)];

const cases: Case[] = [];
const chatFields: Record<string, unknown[]> = {
  model: [null, 1, [], {}, '', 'x'.repeat(300), 'gpt-4o'],
  messages: [null, 'hi', 1, {}, [], [null], [1], ['hi'], [{}], [{ role: 'user' }], [{ role: 'wizard', content: 'x' }], [{ role: 'user', content: 5 }], [{ role: 'user', content: [{}] }], [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }], [{ role: 'user', content: [{ type: 'text' }] }], [{ role: 'user', content: [{ type: 'text', text: 5 }] }], [{ role: 'tool', content: 'x' }], [{ role: 'tool', content: 'x', tool_call_id: 'nope' }], [{ role: 'assistant', content: null }], [{ role: 'assistant', tool_calls: [{ id: 1 }] }], [{ role: 'user', content: null }]],
  max_tokens: [0, -5, 1.5, '10', 1e300, true],
  max_completion_tokens: [0, -1, 'x', 2.5],
  temperature: [-0.1, 2.01, 'hot', 1e308, [], {}],
  top_p: [-1, 1.1, 'all'],
  n: [0, -1, 17, 1.5, '2', 1e9],
  stop: [5, [1], ['a', 'b', 'c', 'd', 'e'], { a: 1 }, [null]],
  seed: [1.5, 'seed', 1e30, -1e30, {}],
  presence_penalty: [-3, 3, 'x'],
  frequency_penalty: [2.5, -2.5, []],
  logit_bias: ['x', [1], { 'not-a-token': 1 }, { '1': 101 }, { '1': -101 }, { '1': 'x' }, { '99999999999': 1 }, { '-1': 1 }],
  logprobs: ['yes', 1, {}],
  top_logprobs: [-1, 21, 1.5, 'x'],
  user: [1, {}, 'u'.repeat(600)],
  stream: ['true', 1, {}],
  stream_options: ['x', 1, { include_usage: 'yes' }],
  tools: ['x', {}, [1], [{}], [{ type: 'function' }], [{ type: 'function', function: {} }], [{ type: 'function', function: { name: 'bad name' } }], [{ type: 'function', function: { name: 'f', parameters: 'x' } }], [{ type: 'function', function: { name: 'f', parameters: { type: 'objekt' } } }], [{ type: 'function', function: { name: 'f', parameters: { $ref: 'http://169.254.169.254/latest' } } }], [{ type: 'function', function: { name: 'f', parameters: { properties: { a: { pattern: '(' } } } } }], [{ type: 'retrieval' }]],
  tool_choice: ['sometimes', 1, { type: 'function' }, { type: 'function', function: { name: 'nope' } }, 'required'],
  parallel_tool_calls: ['no', 0],
  response_format: ['json', { type: 'xml' }, { type: 'json_schema' }, { type: 'json_schema', json_schema: { name: 'bad name!' } }, { type: 'json_schema', json_schema: { name: 'x', schema: { type: 12 } } }, { type: 'json_schema', json_schema: { name: 'x', schema: 'x' } }],
  top_k: [-2, 'x', 1.5],
  min_p: [-1, 2],
  repetition_penalty: [0, -1, 11],
};

// 1. Each field with each of its bad values, and with generic wrong-typed values.
for (const [field, values] of Object.entries(chatFields)) {
  for (const v of [...values, ...wrongValues.filter(() => rnd() < 0.5)]) {
    const body = { ...good, [field]: v };
    // Some generic values are valid for some fields (null for optional ones): skip those.
    if (validatorFor('CreateChatCompletionRequest')(body) && !(field in { messages: 1, model: 1, tools: 1, tool_choice: 1, logit_bias: 1, response_format: 1, stop: 1 })) continue;
    if (field === 'stop' && (v === null || typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string') && v.length <= 4))) continue;
    if (field === 'tool_choice' && (v === null || v === 'none' || v === 'auto')) continue;
    if ((field === 'tools' && Array.isArray(v) && v.length === 0) || (field === 'logit_bias' && (v === null || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0)))) continue;
    if (field === 'response_format' && v === null) continue;
    cases.push({ name: `chat ${field}=${JSON.stringify(v)?.slice(0, 40)}`, body: json(body) });
  }
}
// 2. Huge numbers as raw JSON text in numeric fields.
for (const field of ['max_tokens', 'temperature', 'top_p', 'n', 'seed', 'presence_penalty', 'top_logprobs', 'frequency_penalty', 'max_completion_tokens', 'top_k']) {
  for (const num of hugeNumbers) {
    const text = json(good).replace(/}$/, `,"${field}":${num}}`);
    // -0, 1e-400 (0) are valid for some fields; only keep cases the schema refuses.
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (parsed !== undefined && validatorFor('CreateChatCompletionRequest')(parsed)) continue;
    cases.push({ name: `chat ${field}=${num.slice(0, 20)}`, body: text });
  }
}
// 3. Not JSON, or not an object.
const notJson = ['', ' ', '{', '}', '{"model":', '{"model":"m",}', "{'model':'m'}", 'null', 'true', '1', '"str"', '[]', '[{}]', 'NaN', '{"a":NaN}', '{"a":Infinity}', '{"a":undefined}', '\u0000', '{"model":"m"}garbage', '//comment\n{}', '{"a":1}{"b":2}'];
for (const b of notJson) cases.push({ name: `not json ${JSON.stringify(b).slice(0, 30)}`, body: b });
// 4. Invalid UTF-8 bytes: raw, inside strings, in keys, overlong encodings, lone surrogates.
const badUtf8 = [[0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xc3], [0xf4, 0x90, 0x80, 0x80]];
for (const bytes of badUtf8) {
  const enc = new TextEncoder();
  const wrap = (prefix: string, suffix: string): Uint8Array => Uint8Array.from([...enc.encode(prefix), ...bytes, ...enc.encode(suffix)]);
  cases.push({ name: `utf8 raw ${bytes}`, body: Uint8Array.from(bytes) });
  cases.push({ name: `utf8 in model ${bytes}`, body: wrap('{"model":"', `","messages":[{"role":"user","content":"hi"}]}`) });
  cases.push({ name: `utf8 in role ${bytes}`, body: wrap(`{"model":"${h.modelId}","messages":[{"role":"`, `","content":"hi"}]}`) });
  cases.push({ name: `utf8 in key ${bytes}`, body: wrap(`{"model":"${h.modelId}","messages":[{"role":"user","content":"hi"}],"max_tokens":0,"`, `":1}`) });
  cases.push({ name: `utf8 in json structure ${bytes}`, body: wrap(`{"model":"${h.modelId}",`, `"messages":[]}`) });
  cases.push({ name: `utf8 in content with bad n ${bytes}`, body: wrap(`{"model":"${h.modelId}","n":0,"messages":[{"role":"user","content":"`, `"}]}`) });
}
for (const s of ['\\ud800', '\\udfff', '\\ud800\\ud800', '\\u0000']) {
  cases.push({ name: `escaped ${s} in model`, body: `{"model":"${s}","messages":[{"role":"user","content":"hi"}]}`, status: 404 });
}
// 5. Deep nesting, as wrong types (parsed, then refused) and as raw text deeper than any parser's stack.
for (const depth of [10, 100, 1000]) {
  cases.push({ name: `deep messages ${depth}`, body: json({ ...good, messages: nest(depth, 'x') }) });
  cases.push({ name: `deep content ${depth}`, body: json({ ...good, messages: [{ role: 'user', content: nest(depth, { type: 'text', text: 'x' }) }] }) });
  cases.push({ name: `deep model ${depth}`, body: json({ ...good, model: nest(depth, 'x', false) }) });
  let schema: unknown = { type: 'nope' };
  for (let i = 0; i < depth; i++) schema = { type: 'object', properties: { a: schema } };
  cases.push({ name: `deep tool params ${depth}`, body: json({ ...good, tools: [{ type: 'function', function: { name: 'f', parameters: schema } }] }), status: 400 });
  cases.push({ name: `deep unknown field + bad n ${depth}`, body: json({ ...good, n: 0, extra: nest(depth, 1) }) });
}
for (const depth of [20_000, 200_000]) {
  cases.push({ name: `raw deep arrays ${depth}`, body: `{"model":"${h.modelId}","messages":${nestText(depth, '[', ']')}}` });
  cases.push({ name: `raw deep objects ${depth}`, body: `{"model":"${h.modelId}","messages":[],"x":${nestText(depth, '{"a":', '}')}}` });
  cases.push({ name: `raw deep tool params ${depth}`, body: `{"model":"${h.modelId}","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":${nestText(depth, '{"properties":{"a":', '}}', '{"type":"bogus"}')}}}]}` });
  cases.push({ name: `raw unclosed nesting ${depth}`, body: `{"model":"m","x":${'['.repeat(depth)}` });
}
// 6. Enormous strings (within the 1 MiB body limit, and beyond it).
const big = 'A'.repeat(900_000);
cases.push({ name: 'enormous content', body: json({ ...good, messages: [{ role: 'user', content: big }] }), status: 400 });
cases.push({ name: 'enormous system + user', body: json({ ...good, messages: [{ role: 'system', content: 'word '.repeat(30_000) }, { role: 'user', content: 'hi' }] }), status: 400 });
cases.push({ name: 'enormous model', body: json({ ...good, model: big }), status: 400 });
cases.push({ name: 'enormous key', body: `{"${big}":1}`, status: 400 });
cases.push({ name: 'enormous stop', body: json({ ...good, stop: [big.slice(0, 300_000), 'a', 'b', 'c', 'd'] }), status: 400 });
cases.push({ name: 'enormous tool name', body: json({ ...good, tools: [{ type: 'function', function: { name: big } }] }), status: 400 });
cases.push({ name: 'many messages', body: json({ ...good, messages: Array.from({ length: 5_000 }, () => ({ role: 'user', content: 'hello there' })) }), status: 400 });
cases.push({ name: 'many tools', body: json({ ...good, tools: Array.from({ length: 200 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } })) }), status: 400 });
cases.push({ name: 'over the body limit', body: json({ ...good, messages: [{ role: 'user', content: 'B'.repeat(1_200_000) }] }), status: 413 });
cases.push({ name: 'many logit_bias keys', body: json({ ...good, logit_bias: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [String(i + 200_000), 1])) }), status: 400 });
// 7. Prototype-pollution keys at every level.
const protoBodies = [
  `{"__proto__":{"admin":true},"model":"${h.modelId}","messages":[{"role":"user","content":"hi"}]}`,
  `{"model":"${h.modelId}","messages":[{"role":"user","content":"hi","__proto__":{"role":"system"}}]}`,
  `{"model":"${h.modelId}","constructor":{"prototype":{"polluted":1}},"messages":[{"role":"user","content":"hi"}]}`,
  `{"model":"${h.modelId}","messages":[{"role":"user","content":"hi"}],"logit_bias":{"__proto__":5}}`,
  `{"model":"${h.modelId}","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"__proto__":{"type":"string"}}}}]}`,
  `{"model":"${h.modelId}","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"constructor":{"prototype":{"x":1}}}}}}`,
  `{"model":"${h.modelId}","messages":[{"role":"user","content":"hi"}],"stream_options":{"__proto__":{"include_usage":true}}}`,
];
for (const b of protoBodies) cases.push({ name: `proto ${b.slice(0, 60)}`, body: b });
// 8. Headers, methods and routes.
cases.push({ name: 'no auth', body: json(good), headers: { authorization: '' }, status: 401 });
cases.push({ name: 'wrong key', body: json(good), headers: { authorization: 'Bearer nope' }, status: 401 });
cases.push({ name: 'basic auth', body: json(good), headers: { authorization: 'Basic dXNlcjpwYXNz' }, status: 401 });
cases.push({ name: 'huge auth header', body: json(good), headers: { authorization: `Bearer ${'k'.repeat(8000)}` }, status: 401 });
for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'image/png']) {
  cases.push({ name: `content-type ${ct}`, body: json(good), headers: { 'content-type': ct } });
}
cases.push({ name: 'GET chat', method: 'GET', body: '', path: '/v1/chat/completions', status: 404 });
cases.push({ name: 'unknown route', body: json(good), path: '/v1/chat/completion', status: 404 });
cases.push({ name: 'path traversal', method: 'GET', body: '', path: '/v1/models/..%2F..%2Fetc%2Fpasswd', status: 404 });
cases.push({ name: 'unknown model by id', method: 'GET', body: '', path: `/v1/models/${'x'.repeat(400)}`, status: 404 });
// 9. The legacy endpoint.
const completionFields: Record<string, unknown[]> = {
  prompt: [null, 1, {}, [], [null], [-1], [1.5], [[]], [['a']], [[1, 'a']], [tokenLimit()], '', ['']],
  max_tokens: [-1, 'x', 1.5],
  logprobs: [6, -1, true],
  echo: ['yes'],
  best_of: [0, 3, 17],
  suffix: [1, {}], // a string suffix is fill-in-the-middle (the Qwen tokenizer has FIM tokens)
  n: [0, 20],
  model: ['nope', 3],
};
function tokenLimit(): number {
  return 10_000_000;
}
for (const [field, values] of Object.entries(completionFields)) {
  for (const v of values) cases.push({ name: `completions ${field}=${JSON.stringify(v)?.slice(0, 30)}`, path: '/v1/completions', body: json({ ...goodCompletion, [field]: v }) });
}
// 10. Random mutations of a valid body: a random field set to a random bad value, repeated.
const fieldNames = Object.keys(chatFields);
while (cases.length < 1100) {
  const field = pick(fieldNames);
  const v = pick(chatFields[field]!);
  const extra = pick([{}, { [`x${Math.floor(rnd() * 1e6)}`]: pick(wrongValues) }, { metadata: { a: 'b' } }, { store: true }]);
  cases.push({ name: `mutation ${field}`, body: json({ ...good, ...extra, [field]: v }) });
}

t.ok(cases.length >= 1000, `${cases.length} hostile requests`);

async function send(c: Case): Promise<{ status: number; text: string; type: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json', ...c.headers };
  if (headers['authorization'] === '') delete headers['authorization'];
  const r = await fetch(`${h.origin}${c.path ?? '/v1/chat/completions'}`, {
    method: c.method ?? 'POST',
    headers,
    ...(c.method === 'GET' ? {} : { body: c.body }),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') ?? '' };
}

t.test('every hostile request gets a 4xx in OpenAI error shape', async (t) => {
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  // A few at a time, as clients would; each answer is checked as it comes.
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        let r: { status: number; text: string; type: string };
        try {
          r = await send(c);
        } catch (e) {
          failures.push(`${c.name}: request failed: ${String(e)}`);
          continue;
        }
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        let body: unknown;
        try {
          body = JSON.parse(r.text);
        } catch {
          body = undefined;
        }
        if (r.status < 400 || r.status >= 500) failures.push(`${c.name}: status ${r.status} ${r.text.slice(0, 200)}`);
        else if (c.status !== undefined && r.status !== c.status) failures.push(`${c.name}: status ${r.status}, expected ${c.status}: ${r.text.slice(0, 200)}`);
        else if (!r.type.startsWith('application/json') || !isError(body)) failures.push(`${c.name}: not OpenAI's error shape: ${r.text.slice(0, 200)}`);
      }
    }),
  );
  t.same(failures, [], 'no failures');
  t.comment(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
  t.notOk(Object.prototype.hasOwnProperty.call({}, 'admin') || ({} as Record<string, unknown>)['polluted'] !== undefined, 'Object.prototype untouched');
});

t.test('a normal request right after succeeds', async (t) => {
  const r = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' },
    body: json({ ...good, max_tokens: 4, seed: 1 }),
  });
  t.equal(r.status, 200);
  const body = (await r.json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  t.ok(validatorFor('CreateChatCompletionResponse')(body), 'a valid chat completion');
  t.ok(body.usage.completion_tokens > 0 && body.usage.completion_tokens <= 4);
  const health = await fetch(`${h.origin}/health`);
  t.equal(health.status, 200);
});
