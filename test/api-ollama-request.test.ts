// Ollama's request bodies → the chat request hearth plans (ollama-request.ts), without sockets:
// tool calls with object arguments and tool results matched by tool name, options, format, think,
// and the refusals (num_ctx over the context, images, raw).
import t, { type Test } from 'tap';
import { HearthError } from '../src/errors/index.ts';
import { ollamaMessages, resolveOllamaModel, translateOllamaChat, translateOllamaGenerate } from '../src/api/ollama-request.ts';
import type { ServedModel } from '../src/api/types.ts';

const model = { id: 'tiny', family: 'qwen3', contextLength: 4096 } as unknown as ServedModel;

function refused(t: Test, fn: () => unknown, param: string, re: RegExp): void {
  try {
    fn();
    t.fail(`expected a 400 on ${param}`);
  } catch (e) {
    t.ok(e instanceof HearthError, 'a HearthError');
    t.equal((e as HearthError).param, param);
    t.match((e as Error).message, re);
  }
}

t.test('tool calls round-trip: object arguments become JSON, results match calls by tool name', async (t) => {
  const out = ollamaMessages([
    { role: 'user', content: 'weather in two cities' },
    { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }, { function: { name: 'get_time', arguments: { tz: 'UTC' } } }] },
    { role: 'tool', content: '12:00', tool_name: 'get_time' },
    { role: 'tool', content: '21C', tool_name: 'get_weather' },
  ]);
  const calls = out[1]!.tool_calls!;
  t.equal(out[1]!.content, null, 'no text beside the calls');
  t.same(calls.map((c) => c.function.arguments), ['{"city":"Paris"}', '{"tz":"UTC"}']);
  t.equal(calls[0]!.id === calls[1]!.id, false, 'each call gets its own id');
  t.equal(out[2]!.tool_call_id, calls[1]!.id, 'the get_time result answers the get_time call');
  t.equal(out[3]!.tool_call_id, calls[0]!.id, 'the get_weather result answers the get_weather call');
  refused(t, () => ollamaMessages([{ role: 'tool', content: 'x', tool_name: 'nothing' }]), 'messages[0]', /earlier assistant tool call/);
});

t.test('options, format and think map onto the chat request', async (t) => {
  const r = translateOllamaChat({
    model: 'tiny:latest',
    messages: [{ role: 'user', content: 'hi' }],
    format: { type: 'object', properties: { a: { type: 'integer' } } },
    options: { temperature: 0.3, top_p: 0.8, top_k: 7, seed: 9, num_predict: 12, stop: 'END', num_ctx: 2048, repeat_penalty: 1.1, num_thread: 4 },
    think: false,
  }, model);
  t.equal(r.model, 'tiny', 'NAME:latest resolves to the served id');
  t.same(r.response_format, { type: 'json_schema', json_schema: { name: 'format', schema: { type: 'object', properties: { a: { type: 'integer' } } } } });
  t.same([r.temperature, r.top_p, r.top_k, r.seed, r.max_tokens, r.stop, r.repetition_penalty], [0.3, 0.8, 7, 9, 12, ['END'], 1.1]);
  t.same(r.chat_template_kwargs, { enable_thinking: false });
  const j = translateOllamaGenerate({ model: 'tiny', prompt: 'p', system: 's', format: 'json', options: { num_predict: -1 } }, model);
  t.same(j.messages, [{ role: 'system', content: 's' }, { role: 'user', content: 'p' }]);
  t.same(j.response_format, { type: 'json_object' });
  t.equal(j.max_tokens, undefined, 'num_predict -1: no limit but the context');
  t.equal(translateOllamaGenerate({ model: 'tiny', prompt: 'p', format: null }, model).response_format, undefined, 'format null: free text');
});

t.test('refusals name their field', async (t) => {
  refused(t, () => translateOllamaChat({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], options: { num_ctx: 8192 } }, model), 'options.num_ctx', /4096/);
  refused(t, () => translateOllamaChat({ model: 'tiny', messages: [{ role: 'user', content: 'hi', images: ['aGk='] }] }, model), 'messages[0].images', /text only/);
  refused(t, () => translateOllamaGenerate({ model: 'tiny', prompt: 'p', raw: true }, model), 'raw', /raw/);
  refused(t, () => resolveOllamaModel('llama3:8b', model), 'model', /llama3:8b/);
});
