import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import t from 'tap';
import { clientName } from '../src/observability/access-log.ts';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';

// One access-log line per request at info (issue 21 item 7): route pattern, status, ms, tokens
// when the route knew them, the client from its User-Agent; never a prompt, a key or a raw URL.
// A real gateway (its own pino logger, as `hearth up` runs it), nats-server and a worker process;
// the openai and Anthropic SDKs as clients.

t.test('client names from User-Agent headers', async (t) => {
  t.equal(clientName('claude-cli/2.1.332 (external, sdk-cli)'), 'claude-cli/2.1.332');
  t.equal(clientName('OpenAI/JS 6.3.0'), 'OpenAI/JS 6.3.0');
  t.equal(clientName('Anthropic/JS 0.60.0'), 'Anthropic/JS 0.60.0');
  t.equal(clientName('ollama-js/0.5.16 (x64 linux Node.js/v20.20.2)'), 'ollama-js/0.5.16');
  t.equal(clientName('curl/8.5.0'), 'curl/8.5.0');
  t.equal(clientName('node'), 'node');
  t.equal(clientName(undefined), null);
  t.equal(clientName('  '), null);
  t.equal(clientName('Bearer sk-secret\nx'), 'Bearer', 'only the product token: nothing after it');
});

const key = `sk-access-log-${Math.random().toString(36).slice(2)}`;
const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, logLevel: 'info', flags: { 'server.apiKeys': [key] } });
const modelId = ((await (await fetch(`${c.baseURL}/models`, { headers: { authorization: `Bearer ${key}` } })).json()) as { data: { id: string }[] }).data[0]!.id;

interface Line {
  msg: string;
  level: number;
  reqId: string;
  method: string;
  route: string | null;
  status: number;
  ms: number;
  prompt_tokens?: number;
  completion_tokens?: number;
  client: string | null;
}

function linesFor(reqId: string): Line[] {
  return c
    .log()
    .split('\n')
    .filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.reqId === reqId);
}

/** The one line of a request (the hook runs once the response is out: wait a moment for it). */
async function lineOf(reqId: string | null | undefined): Promise<Line> {
  if (typeof reqId !== 'string') throw new Error('no x-request-id on the response');
  for (let i = 0; i < 100 && linesFor(reqId).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  const lines = linesFor(reqId);
  if (lines.length !== 1) throw new Error(`${lines.length} access-log lines for ${reqId}`);
  return lines[0]!;
}

t.test('one line per request, with route, status, tokens and client; never the prompt or the key', async (t) => {
  const secret = `SECRET-PROMPT-${Math.random().toString(36).slice(2)}`;
  const openai = new OpenAI({ baseURL: c.baseURL, apiKey: key, maxRetries: 0 });
  const chat = await openai.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: `Remember ${secret}` }], max_tokens: 3, temperature: 0 }).withResponse();
  const l1 = await lineOf(chat.response.headers.get('x-request-id'));
  t.match(l1, { level: 30, method: 'POST', route: '/v1/chat/completions', status: 200, completion_tokens: 3 });
  t.equal(l1.prompt_tokens, chat.data.usage!.prompt_tokens);
  t.match(l1.client, /^OpenAI\/JS \d+\.\d+/);
  t.type(l1.ms, 'number');

  const anthropic = new Anthropic({ baseURL: c.origin, apiKey: key, maxRetries: 0 });
  const { data: events, response } = await anthropic.messages.create({ model: modelId, max_tokens: 4, stream: true, messages: [{ role: 'user', content: `Also ${secret}` }] }).withResponse();
  let input = -1;
  let output = -1;
  for await (const ev of events) {
    if (ev.type === 'message_start') input = ev.message.usage.input_tokens;
    if (ev.type === 'message_delta') output = ev.usage.output_tokens;
  }
  const l2 = await lineOf(response.headers.get('x-request-id'));
  t.match(l2, { route: '/v1/messages', status: 200, completion_tokens: output, prompt_tokens: input }, 'a stream: its line once it ended');
  t.ok(input > 0 && output > 0);
  t.match(l2.client, /^Anthropic\/JS \d+\.\d+/);

  const headers = { 'x-api-key': key, 'content-type': 'application/json', 'user-agent': 'claude-cli/2.1.332 (external, sdk-cli)' };
  const count = await fetch(`${c.origin}/v1/messages/count_tokens?beta=true`, { method: 'POST', headers, body: JSON.stringify({ model: modelId, messages: [{ role: 'user', content: secret }] }) });
  t.equal(count.status, 200);
  t.match(await lineOf(count.headers.get('x-request-id')), { route: '/v1/messages/count_tokens', status: 200, client: 'claude-cli/2.1.332' });

  const bad = await fetch(`${c.origin}/v1/messages`, { method: 'POST', headers, body: JSON.stringify({ model: modelId, messages: [{ role: 'user', content: secret }] }) });
  t.equal(bad.status, 400);
  t.match(await lineOf(bad.headers.get('x-request-id')), { route: '/v1/messages', status: 400 });

  const rid = `resp_${secret}`;
  const missing = await fetch(`${c.baseURL}/responses/${rid}`, { headers: { authorization: `Bearer ${key}` } });
  t.equal(missing.status, 404);
  t.match(await lineOf(missing.headers.get('x-request-id')), { route: '/v1/responses/:response_id', status: 404 }, 'the route pattern, not the URL with its id');

  const nowhere = await fetch(`${c.origin}/nowhere?token=${secret}`, { headers: { authorization: `Bearer ${key}` } });
  t.equal(nowhere.status, 404);
  t.match(await lineOf(nowhere.headers.get('x-request-id')), { route: null, status: 404 });

  const denied = await fetch(`${c.baseURL}/models`, { headers: { authorization: 'Bearer wrong-key-123' } });
  t.equal(denied.status, 401);
  t.match(await lineOf(denied.headers.get('x-request-id')), { route: '/v1/models', status: 401 });

  const log = c.log();
  t.notOk(log.includes(secret), 'the prompt (and an id or query holding it) never reaches the log');
  t.notOk(log.includes(key), 'the API key never reaches the log');
  t.notOk(log.includes('wrong-key-123'), 'nor a wrong key');
  t.notOk(/"msg":"(incoming request|request completed)"/.test(log), "fastify's own per-request lines are off");
});
