import t from 'tap';
import { anthropicMessages, translateMessagesRequest } from '../src/api/anthropic-request.ts';
import type { ChoiceEvent } from '../src/api/choice-runner.ts';
import { ResponseOutputBuilder } from '../src/api/responses-events.ts';
import { itemsToMessages, translateResponsesRequest } from '../src/api/responses-request.ts';
import { startHearth } from './helpers/hearth.ts';

// The Responses and Messages routes beyond the happy path the e2e tests cover: the translations
// into chat (pure), the order of typed stream events, errors in each API's own shape, and an
// engine failure after the stream started.

t.test('Responses items → chat messages: calls join the assistant turn, reasoning dropped', async (t) => {
  const msgs = itemsToMessages([
    { role: 'user', content: 'Weather?' },
    { type: 'reasoning' },
    { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me look.' }] },
    { type: 'function_call', call_id: 'c1', name: 'w', arguments: '{"city":"Oslo"}' },
    { type: 'function_call', call_id: 'c2', name: 'w', arguments: '{"city":"Rome"}' },
    { type: 'function_call_output', call_id: 'c1', output: 'sunny' },
    { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'rain' }] },
  ]);
  t.same(msgs, [
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'w', arguments: '{"city":"Oslo"}' } }, { id: 'c2', type: 'function', function: { name: 'w', arguments: '{"city":"Rome"}' } }] },
    { role: 'tool', content: 'sunny', tool_call_id: 'c1' },
    { role: 'tool', content: 'rain', tool_call_id: 'c2' },
  ]);
  const { chat } = translateResponsesRequest({ model: 'm', instructions: 'Be brief.', input: 'hi', tools: [{ type: 'function', name: 'w', parameters: { type: 'object' } } as never], text: { format: { type: 'json_object' } }, max_output_tokens: 5, reasoning: { effort: 'minimal' } }, []);
  t.same(chat.messages[0], { role: 'system', content: 'Be brief.' });
  t.equal(chat.tools![0]!.function.strict, true, 'function tools are strict by default');
  t.same(chat.response_format, { type: 'json_object' });
  t.equal(chat.max_completion_tokens, 5);
  t.same(chat.chat_template_kwargs, { enable_thinking: false });
  t.throws(() => translateResponsesRequest({ model: 'm', input: 'x', tools: [{ type: 'web_search' }] }, [], 'refuse'), /hosted tool/);
  // Codex CLI: instructions plus developer items up front → one leading system message.
  const codex = translateResponsesRequest({ model: 'm', instructions: 'A', input: [{ role: 'developer', content: 'B' }, { role: 'developer', content: [{ type: 'input_text', text: 'C' }] }, { role: 'user', content: 'hi' }] }, []);
  t.same(codex.chat.messages, [{ role: 'system', content: 'A\n\nB\n\nC' }, { role: 'user', content: 'hi' }]);
  t.same(translateResponsesRequest({ model: 'm', input: [{ role: 'developer', content: 'B' }, { role: 'user', content: 'hi' }] }, []).chat.messages[0], { role: 'system', content: 'B' });
  t.throws(() => itemsToMessages([{ type: 'item_reference' }]), /Invalid input item type 'item_reference'/);
});

t.test('Anthropic blocks → chat messages: tool_result first, tool_use as calls, thinking dropped', async (t) => {
  const msgs = anthropicMessages({
    system: [{ type: 'text', text: 'Terse.' }],
    messages: [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: [{ type: 'thinking' }, { type: 'text', text: 'Looking.' }, { type: 'tool_use', id: 't1', name: 'w', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: '18 C' }], is_error: false }, { type: 'text', text: 'Thanks' }] },
    ],
  });
  t.same(msgs, [
    { role: 'system', content: 'Terse.' },
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: 'Looking.', tool_calls: [{ id: 't1', type: 'function', function: { name: 'w', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 't1', content: '18 C' },
    { role: 'user', content: 'Thanks' },
  ]);
  const chat = translateMessagesRequest({ model: 'm', max_tokens: 9, messages: [{ role: 'user', content: 'x' }], tools: [{ name: 'w', input_schema: { type: 'object' } }], tool_choice: { type: 'any', disable_parallel_tool_use: true }, stop_sequences: ['END'] });
  t.equal(chat.tool_choice, 'required');
  t.equal(chat.parallel_tool_calls, false);
  t.same(chat.stop, ['END']);
  t.same(translateMessagesRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ name: 'w' }], tool_choice: { type: 'tool', name: 'w' } }).tool_choice, { type: 'function', function: { name: 'w' } });
  t.throws(() => anthropicMessages({ messages: [{ role: 'user', content: [{ type: 'image' }] }] }), /reads text only/);
});

t.test('typed Responses events: each item opened, filled and closed in order', async (t) => {
  const b = new ResponseOutputBuilder();
  const evs: ChoiceEvent[] = [
    { type: 'reasoning', text: 'hmm', logprobs: [] },
    { type: 'content', text: 'Sure', logprobs: [] },
    { type: 'tool_call_start', index: 0, id: 'call_1', name: 'w', logprobs: [] },
    { type: 'tool_call_args', index: 0, fragment: '{"a":', logprobs: [] },
    { type: 'tool_call_args', index: 0, fragment: '1}', logprobs: [] },
    { type: 'tool_call_end', index: 0 },
    { type: 'finish', reason: 'tool_calls', completionTokens: 9, logprobs: [] },
  ];
  const types = [...evs.flatMap((e) => b.push(e)), ...b.finish(false)].map((e) => `${e.type}@${String(e['output_index'])}`);
  t.same(types, [
    'response.output_item.added@0', 'response.content_part.added@0', 'response.reasoning_text.delta@0',
    'response.reasoning_text.done@0', 'response.content_part.done@0', 'response.output_item.done@0',
    'response.output_item.added@1', 'response.content_part.added@1', 'response.output_text.delta@1',
    'response.output_text.done@1', 'response.content_part.done@1', 'response.output_item.done@1',
    'response.output_item.added@2', 'response.function_call_arguments.delta@2', 'response.function_call_arguments.delta@2',
    'response.function_call_arguments.done@2', 'response.output_item.done@2',
  ]);
  t.same(b.output.map((o) => o.type), ['reasoning', 'message', 'function_call']);
  t.match(b.output[2], { call_id: 'call_1', name: 'w', arguments: '{"a":1}', status: 'completed' });
  const empty = new ResponseOutputBuilder();
  empty.push({ type: 'finish', reason: 'stop', completionTokens: 0, logprobs: [] });
  empty.finish(false);
  t.match(empty.output, [{ type: 'message', content: [{ type: 'output_text', text: '' }] }], 'no output still gives a message');
});

const h = await startHearth(t, { workers: 1, inProcess: true });
const headers = { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' };
const post = (path: string, body: object, extra: Record<string, string> = {}): Promise<Response> => fetch(`${h.origin}${path}`, { method: 'POST', headers: { ...headers, ...extra }, body: JSON.stringify(body) });

t.test('errors: OpenAI shape on /v1/responses (Responses param names), Anthropic shape on /v1/messages', async (t) => {
  const bad = await post('/v1/responses', { model: h.modelId, input: 'x', tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: { a: { type: 'nope' } } } }] });
  t.equal(bad.status, 400);
  const be = (await bad.json()) as { error: { param: string; code: string } };
  t.equal(be.error.param, 'tools[0].parameters', 'named as the Responses API names it');
  const fmt = await post('/v1/responses', { model: h.modelId, input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { type: 'object', properties: { a: { type: 'nope' } } } } } });
  t.equal(((await fmt.json()) as { error: { param: string } }).error.param, 'text.format.schema');
  const noInput = await post('/v1/responses', { model: h.modelId });
  t.equal(noInput.status, 400);
  const missing = await post('/v1/messages', { model: h.modelId, messages: [{ role: 'user', content: 'x' }] });
  t.equal(missing.status, 400);
  const me = (await missing.json()) as { type: string; error: { type: string; message: string } };
  t.equal(me.type, 'error');
  t.equal(me.error.type, 'invalid_request_error');
  t.match(me.error.message, /max_tokens/);
  const version = await post('/v1/messages', { model: h.modelId, max_tokens: 2, messages: [{ role: 'user', content: 'x' }] }, { 'anthropic-version': 'yesterday' });
  t.equal(version.status, 400);
  t.match(((await version.json()) as { error: { message: string } }).error.message, /anthropic-version/);
  const key = await fetch(`${h.origin}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'wrong' }, body: JSON.stringify({ model: h.modelId, max_tokens: 2, messages: [{ role: 'user', content: 'x' }] }) });
  t.equal(key.status, 401);
  t.same(((await key.json()) as { error: { type: string } }).error.type, 'authentication_error');
  const ok = await post('/v1/messages', { model: h.modelId, max_tokens: 2, messages: [{ role: 'user', content: 'x' }] }, { 'anthropic-version': '2023-06-01', authorization: '', 'x-api-key': h.apiKey });
  t.equal(ok.status, 200, 'x-api-key + anthropic-version');
});

t.test('an engine failure mid-stream: Responses sends error + response.failed, Messages an error event', async (t) => {
  const r1 = await post('/v1/responses', { model: h.modelId, input: 'Go on.', stream: true, max_output_tokens: 400, seed: 2 });
  const r2 = await post('/v1/messages', { model: h.modelId, messages: [{ role: 'user', content: 'Go on.' }], stream: true, max_tokens: 400 });
  t.equal(r1.status, 200);
  t.equal(r2.status, 200);
  const readers = [r1, r2].map((r) => r.body!.getReader());
  const dec = new TextDecoder();
  const texts = await Promise.all(readers.map(async (rd) => dec.decode((await rd.read()).value)));
  await h.local!.breakPipeline();
  for (const [i, rd] of readers.entries()) {
    for (;;) {
      const { done, value } = await rd.read();
      if (done) break;
      texts[i] += dec.decode(value, { stream: true });
    }
  }
  const names = (s: string): string[] => [...s.matchAll(/^event: (.+)$/gm)].map((m) => m[1]!);
  t.same(names(texts[0]!).slice(-2), ['error', 'response.failed'], 'Responses: error, then the response as failed');
  t.notOk(texts[0]!.includes('[DONE]'), 'no [DONE] in a Responses stream');
  t.equal(names(texts[1]!).at(-1), 'error', 'Messages: an error event');
  t.match(texts[1]!, /"type":"error","error":\{"type":"(api_error|overloaded_error)"/);
  t.equal((await fetch(`${h.origin}/health`)).status, 200, 'the server stays up');
});
