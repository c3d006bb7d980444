import { Ajv } from 'ajv';
import OpenAI from 'openai';
import type { ChatCompletionTool } from 'openai/resources/chat/completions';
import t from 'tap';
import { startHearth } from './helpers/hearth.ts';

// The openai npm SDK against a running hearth (`hearth up`: nats-server, gateway, 2 worker processes,
// tiny random checkpoint with the real Qwen3 tokenizer and template), used as a user would.

const h = await startHearth(t, { workers: 2 });
const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0, timeout: 120_000 });
const model = h.modelId;
const messages = [{ role: 'user' as const, content: 'Tell me about the weather.' }];
const ajv = new Ajv();

const weatherParams = { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false };
const addParams = { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'], additionalProperties: false };
const tools: ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: weatherParams } },
  { type: 'function', function: { name: 'add', description: 'Add two integers', parameters: addParams } },
];

t.comment(`hearth mode: ${h.mode}`);

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
}
async function statusOf(p: Promise<unknown>): Promise<number | undefined> {
  return ((await errorOf(p)) as { status?: number }).status;
}

t.test('models.list and retrieve', async (t) => {
  const list = await client.models.list();
  t.same(list.data.map((m) => m.id), [model]);
  const one = await client.models.retrieve(model);
  t.equal(one.id, model);
  t.equal(await statusOf(client.models.retrieve('nope')), 404);
});

t.test('create and stream give the same text for the same seed', async (t) => {
  const done = await client.chat.completions.create({ model, messages, max_tokens: 12, seed: 42 });
  const text = done.choices[0]!.message.content ?? '';
  t.ok(text.length > 0, JSON.stringify(text));
  t.equal(done.usage!.completion_tokens, 12);
  t.ok(['length', 'stop'].includes(done.choices[0]!.finish_reason));
  const s = await client.chat.completions.create({ model, messages, max_tokens: 12, seed: 42, stream: true, stream_options: { include_usage: true } });
  let streamed = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of s) {
    streamed += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  t.equal(streamed, text, 'same text');
  t.same(usage, done.usage, 'usage arrives in the stream');
});

t.test('runTools: two tools, calls executed and their results sent back to the model', async (t) => {
  const calls: { name: string; args: unknown }[] = [];
  const runner = client.chat.completions.runTools({
    model,
    messages: [{ role: 'user', content: 'What is the weather in Oslo, and what is 2 + 40?' }],
    tool_choice: 'required',
    max_tokens: 100,
    seed: 5,
    tools: [
      { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: weatherParams, parse: JSON.parse, function: (args: { city: string; unit: string }) => { calls.push({ name: 'get_weather', args }); return { city: args.city, temperature: 21, unit: args.unit }; } } },
      { type: 'function', function: { name: 'add', description: 'Add two integers', parameters: addParams, parse: JSON.parse, function: (args: { a: number; b: number }) => { calls.push({ name: 'add', args }); return String(args.a + args.b); } } },
    ],
  }, { maxChatCompletions: 3 });
  await runner.done();
  const all = runner.messages;
  const toolMsgs = all.filter((m) => m.role === 'tool');
  t.ok(calls.length >= 3, `${calls.length} tool calls executed over 3 model turns`);
  t.equal(toolMsgs.length, calls.length, 'each call answered with a tool message');
  for (const c of calls) t.ok(ajv.validate(c.name === 'add' ? addParams : weatherParams, c.args), `${c.name} ${JSON.stringify(c.args)}`);
  const assistantTurns = all.filter((m) => m.role === 'assistant');
  t.equal(assistantTurns.length, 3, 'three model turns, the later ones after tool results');
});

t.test('tool_choice named, streamed with the SDK helper = non-streamed', async (t) => {
  const body = { model, messages, tools, tool_choice: { type: 'function' as const, function: { name: 'get_weather' } }, max_tokens: 80, seed: 8 };
  const plain = await client.chat.completions.create(body);
  const call = plain.choices[0]!.message.tool_calls![0]!;
  t.equal(plain.choices[0]!.finish_reason, 'tool_calls');
  t.equal(call.type, 'function');
  if (call.type !== 'function') return;
  t.equal(call.function.name, 'get_weather');
  t.ok(ajv.validate(weatherParams, JSON.parse(call.function.arguments)), call.function.arguments);
  const fragments: string[] = [];
  const s = client.chat.completions.stream(body);
  s.on('tool_calls.function.arguments.delta', (e) => fragments.push(e.arguments_delta));
  const final = await s.finalChatCompletion();
  t.same(final.choices[0]!.message.tool_calls, plain.choices[0]!.message.tool_calls, 'same calls, ids included');
  t.equal(fragments.join(''), call.function.arguments, 'concatenated fragments = non-streamed arguments');
  t.ok(fragments.length > 1);
});

t.test('response_format json_schema', async (t) => {
  const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, days: { type: 'array', items: { type: 'string', enum: ['mon', 'tue', 'wed'] }, maxItems: 3 }, rain: { type: 'boolean' } }, required: ['city', 'days', 'rain'], additionalProperties: false };
  const r = await client.chat.completions.create({ model, messages, max_tokens: 100, seed: 3, response_format: { type: 'json_schema', json_schema: { name: 'forecast', schema, strict: true } } });
  const value = JSON.parse(r.choices[0]!.message.content!);
  t.ok(ajv.validate(schema, value), JSON.stringify(value));
});

t.test('errors surface as the SDK error classes', async (t) => {
  t.ok((await errorOf(client.chat.completions.create({ model: 'gpt-4o', messages }))) instanceof OpenAI.NotFoundError);
  const badTemp = await errorOf(client.chat.completions.create({ model, messages, temperature: 5 }));
  t.ok(badTemp instanceof OpenAI.BadRequestError);
  t.equal((badTemp as InstanceType<typeof OpenAI.APIError>).param, 'temperature');
  const bad = new OpenAI({ baseURL: h.baseURL, apiKey: 'wrong', maxRetries: 0 });
  t.ok((await errorOf(bad.chat.completions.create({ model, messages }))) instanceof OpenAI.AuthenticationError);
  try {
    await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi '.repeat(6000) }] });
    t.fail('expected an error');
  } catch (e) {
    t.ok(e instanceof OpenAI.BadRequestError);
    t.equal((e as InstanceType<typeof OpenAI.APIError>).code, 'context_length_exceeded');
  }
});
