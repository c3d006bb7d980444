// Structured output through the API of a real `hearth up` (nats-server, gateway, worker processes).
// Issue 8 item 3: a `pattern` in response_format must never hold the gateway's event loop. Against
// a real `hearth up` (nats-server, gateway, worker processes), the request that froze it for 50 s
// (`^([\s\S]*)*\u0001$`, 28 characters) now gets a valid answer while ordinary requests sent
// around it are served, and patterns the linear-time automaton cannot run (or that would blow it
// up) get a 400 naming the problem, with the server still answering afterwards.
import OpenAI from 'openai';
import t from 'tap';
import { compileUserSchema } from '../src/api/user-schemas.ts';
import { startHearth } from './helpers/hearth.ts';

const HOSTILE = '^([\\s\\S]*)*\\u0001$';

t.test('ajv validation runs patterns on the linear automaton, not on backtracking RegExp', (t) => {
  const validate = compileUserSchema({ type: 'string', pattern: HOSTILE, minLength: 28, maxLength: 28 });
  // With JS RegExp this single call backtracks through ~2^27 paths.
  t.equal(validate('a'.repeat(28)), false);
  t.equal(validate('a'.repeat(27) + '\u0001'), true);
  // Only the automaton refuses lookahead; RegExp would simply answer.
  const look = compileUserSchema({ type: 'string', pattern: '^(?=a)' });
  t.throws(() => look('a'), /lookahead/);
  // An invalid pattern is still a schema error when it is compiled (a 400), as with RegExp.
  t.throws(() => compileUserSchema({ type: 'string', pattern: '(' }));
  t.end();
});

const h = await startHearth(t, { workers: 2 });
const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0, timeout: 120_000 });
const messages = [{ role: 'user' as const, content: 'Say something.' }];

async function post(body: Record<string, unknown>): Promise<{ status: number; body: { choices?: { message: { content: string } }[]; error?: { message: string; param: string | null } } }> {
  const r = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${h.apiKey}` },
    body: JSON.stringify({ model: h.modelId, messages, ...body }),
  });
  return { status: r.status, body: (await r.json()) as never };
}

function patternFormat(pattern: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'string', pattern, ...extra } } };
}

async function ordinary(seed: number): Promise<string> {
  const s = await client.chat.completions.create({ model: h.modelId, messages, max_tokens: 16, seed, stream: true });
  let text = '';
  let finished = false;
  for await (const chunk of s) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.choices[0]?.finish_reason) finished = true;
  }
  if (!finished) throw new Error('stream ended without a finish_reason');
  return text;
}

t.test('the hostile pattern gets a valid answer while ordinary requests are served around it', async (t) => {
  const order: string[] = [];
  const before = ordinary(1).then((x) => { order.push('ordinary-before'); return x; });
  const hostile = post({ seed: 7, max_tokens: 60, response_format: patternFormat(HOSTILE, { minLength: 28, maxLength: 28 }) })
    .then((x) => { order.push('hostile'); return x; });
  const during = ordinary(2).then((x) => { order.push('ordinary-during'); return x; });
  const [a, r, b] = await Promise.all([before, hostile, during]);
  t.ok(a.length > 0 && b.length > 0, 'both ordinary requests completed with text');
  t.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
  const value = JSON.parse(r.body.choices![0]!.message.content) as string;
  // Checked without a RegExp: 28 code points, the last one U+0001.
  const cps = [...value];
  t.equal(cps.length, 28, 'exactly 28 characters');
  t.equal(cps[27], '\u0001', 'ends in U+0001');
  t.same(order.slice().sort(), ['hostile', 'ordinary-before', 'ordinary-during'], `all three answered (${order.join(' → ')})`);
  // And the server still answers afterwards.
  t.ok((await ordinary(3)).length > 0, 'served after it');
});

t.test('patterns the automaton cannot run are refused with a 400 that names the construct', async (t) => {
  const cases: [string, RegExp][] = [
    ['^(a)\\1$', /backreference/],
    ['^(?=.*\\d)[a-z0-9]+$', /lookahead/],
    ['(?<!x)y', /lookbehind/],
    ['\\bword', /word boundary/],
    ['^\\p{L}+$', /Unicode property/],
    // A DFA with 2^20 states (the n-th character from the end): refused by the state bound.
    ['^(a|b)*a(a|b){20}$', /too complex|complex/],
    ['^a{1,100000}$', /large/],
  ];
  for (const [pattern, why] of cases) {
    const r = await post({ seed: 1, max_tokens: 20, response_format: patternFormat(pattern) });
    t.equal(r.status, 400, `${pattern}: 400`);
    t.match(r.body.error?.message ?? '', /pattern/, `${pattern}: the message names the keyword`);
    t.match(r.body.error?.message ?? '', why, `${pattern}: and the construct (${r.body.error?.message ?? ''})`);
  }
  // A length no string matching the pattern can have: refused up front, not a 422 after.
  const none = await post({ seed: 1, max_tokens: 20, response_format: patternFormat('^[0-9]{5}$', { maxLength: 4 }) });
  t.equal(none.status, 400, JSON.stringify(none.body));
  t.ok((await ordinary(4)).length > 0, 'the server still answers');
});

t.test('issue 12: keywords are enforced through the API, and a keyword hearth cannot enforce is a 400', async (t) => {
  const schema = {
    type: 'object',
    properties: {
      age: { type: 'integer', minimum: 0, maximum: 150 },
      born: { type: 'string', format: 'date' },
      code: { type: 'string', pattern: '^[A-Z]{3}$' },
      score: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    },
    required: ['age', 'born', 'code', 'score'],
    additionalProperties: false,
  };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: h.modelId, messages, seed, max_tokens: 80, response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } } });
    const v = JSON.parse(r.choices[0]!.message.content ?? '') as { age: number; born: string; code: string; score: number };
    t.ok(Number.isInteger(v.age) && v.age >= 0 && v.age <= 150, `age ${v.age}`);
    t.ok(!Number.isNaN(Date.parse(`${v.born}T00:00:00Z`)) && v.born.length === 10, `born ${v.born}`);
    t.ok(v.code.length === 3 && [...v.code].every((c) => c >= 'A' && c <= 'Z'), `code ${v.code}`);
    t.ok(v.score > 0 && v.score <= 1, `score ${v.score}`);
  }
  // Streamed too: the same constraint.
  const s = await client.chat.completions.create({ model: h.modelId, messages, seed: 9, max_tokens: 80, stream: true, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } });
  let text = '';
  for await (const c of s) text += c.choices[0]?.delta.content ?? '';
  t.ok(Number.isInteger((JSON.parse(text) as { age: number }).age), `streamed ${text}`);

  const refused = await post({ seed: 1, max_tokens: 20, response_format: { type: 'json_schema', json_schema: { name: 'u', schema: { type: 'array', items: { type: 'integer' }, uniqueItems: true } } } });
  t.equal(refused.status, 400);
  t.match(refused.body.error?.message ?? '', /uniqueItems/, 'the 400 names the keyword');
  // The same for a tool's parameters when the call is forced.
  const tool = await post({
    seed: 1, max_tokens: 40, tool_choice: 'required',
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'object', minProperties: 2 } }, required: ['a'] } } }],
  });
  t.equal(tool.status, 400);
  t.match(tool.body.error?.message ?? '', /minProperties/, 'tool parameters too');
});
