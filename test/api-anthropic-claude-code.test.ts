import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import { startHearth } from './helpers/hearth.ts';

// Anthropic Messages as Claude Code sends it (issue 21 items 1 and 5), through the real
// @anthropic-ai/sdk against `hearth up` (nats-server, gateway, worker processes; tiny random Qwen3
// checkpoint with the real Qwen3 tokenizer and template). The body below has the shape Claude Code
// 2.1.332 sent in a logged `claude -p` run: system blocks with cache_control, a system message
// after the user's, thinking adaptive with display omitted, context_management, output_config,
// metadata.user_id, `?beta=true`.

const h = await startHearth(t, { workers: 1 });
const anthropic = new Anthropic({ baseURL: h.origin, apiKey: h.apiKey, maxRetries: 0, timeout: 120_000 });
const model = h.modelId;
const contextLength = ((await (await fetch(`${h.baseURL}/models`, { headers: { authorization: `Bearer ${h.apiKey}` } })).json()) as { data: { context_length: number }[] }).data[0]!.context_length;

const claudeCodeBody = {
  model,
  max_tokens: 8,
  stream: true,
  system: [
    { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.332.0b8; cc_entrypoint=sdk-cli;' },
    { type: 'text', text: "You are a Claude agent, built on Anthropic's Claude Agent SDK.", cache_control: { type: 'ephemeral' } },
  ],
  messages: [
    { role: 'user', content: [{ type: 'text', text: '<system-reminder>\nAttribution...\n</system-reminder>' }, { type: 'text', text: 'say hi' }] },
    { role: 'system', content: [{ type: 'text', text: '# Environment\nPrimary working directory: /tmp/w', cache_control: { type: 'ephemeral' } }] },
  ],
  tools: [{ name: 'Read', description: 'Reads a file', input_schema: { type: 'object', properties: { file_path: { type: 'string' } }, required: ['file_path'] }, cache_control: { type: 'ephemeral' } }],
  metadata: { user_id: '{"device_id":"ab6b","session_id":"b1ca"}' },
  thinking: { type: 'adaptive', display: 'omitted' },
  context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
  output_config: { effort: 'medium' },
  service_tier: 'auto',
};

async function post(path: string, body: object, ua = 'claude-cli/2.1.332 (external, sdk-cli)'): Promise<Response> {
  return fetch(`${h.origin}${path}`, { method: 'POST', headers: { 'x-api-key': h.apiKey, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'context-management-2025-06-27', 'content-type': 'application/json', 'user-agent': ua }, body: JSON.stringify(body) });
}

async function errorOf(p: Promise<unknown>): Promise<InstanceType<typeof Anthropic.APIError>> {
  const e = await p.then(() => null, (x: unknown) => x);
  if (!(e instanceof Anthropic.APIError)) throw new Error(`expected an APIError, got ${String(e)}`);
  return e;
}

t.test("Claude Code's request: a system message mid-conversation, adaptive thinking, cache_control, context_management", async (t) => {
  const r = await post('/v1/messages?beta=true', claudeCodeBody);
  const text = await r.text();
  t.equal(r.status, 200, text.slice(0, 300));
  const names = [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
  t.equal(names[0], 'message_start');
  t.equal(names.at(-1), 'message_stop');
  t.match(text, /"stop_reason":"(max_tokens|end_turn|tool_use)"/);
  // The same through the SDK (non-streamed): a message with content.
  const m = await anthropic.messages.create({ ...(claudeCodeBody as unknown as Anthropic.MessageCreateParamsNonStreaming), stream: false });
  t.equal(m.type, 'message');
  t.ok(m.usage.input_tokens > 0);
});

t.test('thinking onto the template switch: adaptive/enabled think, absent and disabled do not', async (t) => {
  const base = { model, messages: [{ role: 'user' as const, content: 'Hello there' }] };
  const count = async (thinking?: object): Promise<number> => (await anthropic.messages.countTokens({ ...base, ...(thinking === undefined ? {} : { thinking }) } as Anthropic.MessageCountTokensParams)).input_tokens;
  const off = await count({ type: 'disabled' });
  const adaptive = await count({ type: 'adaptive' });
  // Qwen3's template closes an empty think block in the prompt when enable_thinking is false.
  t.ok(off > adaptive, `disabled renders the empty think block (${off} > ${adaptive})`);
  t.equal(await count(), off, 'absent is disabled, as on Anthropic');
  t.equal(await count({ type: 'enabled', budget_tokens: 1024 }), adaptive);
  const m = await anthropic.messages.create({ ...base, max_tokens: 1100, thinking: { type: 'enabled', budget_tokens: 1024 }, stop_sequences: ['.'] });
  t.equal(m.type, 'message', 'a budget is accepted (and enforced while decoding: api-anthropic-translate)');
});

t.test("errors in Anthropic's shape and words", async (t) => {
  const role = await errorOf(anthropic.messages.create({ model, max_tokens: 4, messages: [{ role: 'tool', content: 'x' }] } as unknown as Anthropic.MessageCreateParamsNonStreaming));
  t.equal(role.status, 400);
  t.match(role.error, { type: 'error', error: { type: 'invalid_request_error', message: /Unexpected role "tool"/ } });
  const tag = await errorOf(anthropic.messages.create({ model, max_tokens: 4, messages: [{ role: 'user', content: 'x' }], thinking: { type: 'sometimes' } } as unknown as Anthropic.MessageCreateParamsNonStreaming));
  t.match(tag.error, { type: 'error', error: { message: /does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'/ } });
  const small = await errorOf(anthropic.messages.create({ model, max_tokens: 4000, messages: [{ role: 'user', content: 'x' }], thinking: { type: 'enabled', budget_tokens: 10 } }));
  t.match(small.error, { error: { message: /budget_tokens: Input should be greater than or equal to 1024/ } });
  const long = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(contextLength / 2));
  const tooLong = await errorOf(anthropic.messages.create({ model, max_tokens: 4, messages: [{ role: 'user', content: long }] }));
  t.equal(tooLong.status, 400);
  t.match(tooLong.error, { type: 'error', error: { type: 'invalid_request_error', message: new RegExp(`^prompt is too long: \\d+ tokens > ${contextLength} maximum$`) } });
  // Every error on the route has the one shape, whatever raised it (schema, route, auth, 404).
  for (const [body, status] of [[{ model, messages: [{ role: 'user', content: 'x' }] }, 400], [{ model: 'claude-nope', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }, 404]] as const) {
    const r = await post('/v1/messages', body);
    t.equal(r.status, status);
    const b = (await r.json()) as { type: string; error: { type: string; message: string } };
    t.equal(b.type, 'error');
    t.type(b.error.message, 'string');
    t.ok(['invalid_request_error', 'not_found_error'].includes(b.error.type), b.error.type);
  }
  const key = await fetch(`${h.origin}/v1/messages/count_tokens`, { method: 'POST', headers: { 'x-api-key': 'wrong-key-xx', 'content-type': 'application/json' }, body: '{}' });
  t.match(await key.json(), { type: 'error', error: { type: 'authentication_error' } });
});

t.test('count_tokens counts a body longer than the context', async (t) => {
  const long = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(contextLength / 2));
  const r = await anthropic.messages.countTokens({ model, messages: [{ role: 'user', content: long }], system: 'Be brief.' });
  t.ok(r.input_tokens > contextLength, `${r.input_tokens} tokens counted (context ${contextLength})`);
  const cc = await post('/v1/messages/count_tokens?beta=true', { ...claudeCodeBody, stream: undefined, max_tokens: undefined });
  t.equal(cc.status, 200);
  t.ok(((await cc.json()) as { input_tokens: number }).input_tokens > 20, "Claude Code's body counts");
});
