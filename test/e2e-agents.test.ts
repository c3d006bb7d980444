import Anthropic from '@anthropic-ai/sdk';
import { Agent, run, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled, tool } from '@openai/agents';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import t from 'tap';
import { z } from 'zod';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { startHearth } from './helpers/hearth.ts';

// The clients today's agents and IDE assistants use, against a running hearth (`hearth up`:
// nats-server with JetStream, gateway, 2 worker processes; tiny random checkpoint with the real
// Qwen3 tokenizer and template): the openai SDK's Responses API, the OpenAI Agents SDK, the
// Anthropic SDK's Messages API, and fill-in-the-middle through /v1/completions. The model is
// random, so every call that must be a tool call or JSON is made so by tool_choice / a schema.

const h = await startHearth(t, { workers: 2 });
const openai = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0, timeout: 120_000 });
const anthropic = new Anthropic({ baseURL: h.origin, apiKey: h.apiKey, maxRetries: 0, timeout: 120_000 });
const model = h.modelId;
const ajv = new Ajv();
const weather = { type: 'object' as const, properties: { city: { type: 'string', maxLength: 16 } }, required: ['city'], additionalProperties: false };
// The Anthropic SDK's types no longer list temperature; the API (and hearth) still take it.
const greedy = { temperature: 0 };
t.comment(`hearth mode: ${h.mode}`);

async function statusOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { status?: number }).status;
  }
  return 200;
}

t.test('responses.create: plain, stored, retrieved, deleted', async (t) => {
  const r = await openai.responses.create({ model, input: 'Tell me a story.', max_output_tokens: 12, seed: 11 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  t.equal(r.object, 'response');
  t.ok(['completed', 'incomplete'].includes(r.status ?? ''), String(r.status));
  t.ok(r.output_text.length > 0, JSON.stringify(r.output_text));
  t.equal(r.usage!.output_tokens, 12);
  t.ok(r.usage!.input_tokens > 0);
  const got = await openai.responses.retrieve(r.id);
  t.same(got.output, r.output, 'GET returns the stored response');
  await openai.responses.delete(r.id);
  t.equal(await statusOf(openai.responses.retrieve(r.id)), 404, 'gone after DELETE');
  t.equal(await statusOf(openai.responses.create({ model, input: 'x', previous_response_id: 'resp_nope' })), 404, 'unknown previous_response_id');
});

t.test('responses.create stream: typed events in order, same text as without stream', async (t) => {
  const params = { model, input: 'Tell me a story.', max_output_tokens: 10, seed: 5 };
  const plain = await openai.responses.create(params as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  const stream = await openai.responses.create({ ...params, stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming);
  const types: string[] = [];
  let text = '';
  let last: OpenAI.Responses.Response | undefined;
  let seq = -1;
  for await (const ev of stream) {
    types.push(ev.type);
    t.equal(ev.sequence_number, seq + 1, 'sequence numbers count up');
    seq = ev.sequence_number;
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed' || ev.type === 'response.incomplete') last = ev.response;
  }
  t.same(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
  t.same(types.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete']);
  t.equal(text, plain.output_text, 'same seed, same text');
  t.same(last!.usage, plain.usage);
  // The SDK's own stream helper accumulates the events (and checks their order).
  const helper = openai.responses.stream({ model, input: params.input, max_output_tokens: params.max_output_tokens, ...({ seed: params.seed } as object) });
  const final = await helper.finalResponse();
  t.equal(final.output_text, plain.output_text, 'responses.stream() accumulates the same text');
});

t.test('function tool round trip continued with previous_response_id', async (t) => {
  const tools: OpenAI.Responses.Tool[] = [{ type: 'function', name: 'get_weather', description: 'Current weather in a city', parameters: weather, strict: true }];
  const first = await openai.responses.create({ model, input: 'What is the weather in Oslo?', tools, tool_choice: 'required', max_output_tokens: 64, seed: 3 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  const call = first.output.find((o) => o.type === 'function_call');
  t.ok(call !== undefined, 'the model called the tool');
  if (call?.type !== 'function_call') return;
  t.equal(call.name, 'get_weather');
  t.ok(ajv.validate(weather, JSON.parse(call.arguments)), call.arguments);
  const second = await openai.responses.create({
    model,
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ city: 'Oslo', celsius: 21 }) }],
    tools,
    tool_choice: 'none',
    max_output_tokens: 8,
    seed: 3,
  } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  t.equal(second.previous_response_id, first.id);
  t.ok(second.output.some((o) => o.type === 'message'), 'a message after the tool result');
  t.notOk(second.output.some((o) => o.type === 'function_call'), "tool_choice 'none': no call");
  // The same conversation sent in full, without previous_response_id, renders the same prompt.
  const full = await openai.responses.create({
    model,
    input: [{ role: 'user', content: 'What is the weather in Oslo?' }, { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments }, { type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ city: 'Oslo', celsius: 21 }) }],
    tools,
    tool_choice: 'none',
    max_output_tokens: 8,
    seed: 3,
    store: false,
  } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  t.equal(second.usage!.input_tokens, full.usage!.input_tokens, 'the stored conversation was continued');
  t.equal(second.output_text, full.output_text, 'same prompt, same seed, same text');
  t.equal(await statusOf(openai.responses.retrieve(full.id)), 404, 'store:false is not stored');
  // The streamed variant of a forced call.
  const s = await openai.responses.create({ model, input: 'Weather in Rome?', tools, tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 64, seed: 4, stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming);
  let args = '';
  let done = '';
  for await (const ev of s) {
    if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
    if (ev.type === 'response.function_call_arguments.done') done = ev.arguments;
  }
  t.ok(args.length > 0 && args === done, 'argument deltas add up to the arguments');
  t.ok(ajv.validate(weather, JSON.parse(done)), done);
});

t.test('text.format json_schema: the output parses and validates', async (t) => {
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, mood: { type: 'string', enum: ['happy', 'sad'] } }, required: ['name', 'mood'], additionalProperties: false };
  const r = await openai.responses.create({ model, input: 'Describe a cat.', text: { format: { type: 'json_schema', name: 'cat', schema, strict: true } }, max_output_tokens: 80, seed: 9 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  t.equal(r.status, 'completed');
  const value: unknown = JSON.parse(r.output_text);
  t.ok(ajv.validate(schema, value), r.output_text);
});

t.test('@openai/agents: an Agent with a function tool runs to a final output', async (t) => {
  setDefaultOpenAIClient(openai as never);
  setOpenAIAPI('responses');
  setTracingDisabled(true);
  const cities: string[] = [];
  const getWeather = tool({
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: z.object({ city: z.string().max(16) }),
    execute: async ({ city }) => {
      cities.push(city);
      return `It is sunny in ${city}.`;
    },
  });
  // tool_choice required makes the first turn a call; the SDK then resets it to auto and the
  // (random) model answers in text. The seed keeps the run reproducible.
  const agent = new Agent({ name: 'Weather', instructions: 'Use get_weather, then answer.', tools: [getWeather], model, modelSettings: { toolChoice: 'required', maxTokens: 48, providerData: { seed: 21 } } });
  const result = await run(agent, 'What is the weather in Oslo?', { maxTurns: 4 });
  t.equal(cities.length, 1, `the tool ran once (${JSON.stringify(cities)})`);
  t.equal(typeof result.finalOutput, 'string');
  t.ok(result.newItems.some((i) => i.type === 'tool_call_output_item'), 'the tool output went back to the model');
});

t.test('@anthropic-ai/sdk messages.create: plain and streamed', async (t) => {
  const m = await anthropic.messages.create({ model, max_tokens: 10, messages: [{ role: 'user', content: 'Hello there' }], ...greedy });
  t.equal(m.type, 'message');
  t.equal(m.role, 'assistant');
  t.equal(m.stop_reason, 'max_tokens');
  t.equal(m.usage.output_tokens, 10);
  const text = m.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
  t.ok(text.length > 0);
  const stream = anthropic.messages.stream({ model, max_tokens: 10, messages: [{ role: 'user', content: 'Hello there' }], ...greedy });
  let streamed = '';
  stream.on('text', (d) => (streamed += d));
  const final = await stream.finalMessage();
  t.equal(streamed, text, 'greedy: the stream gives the same text');
  t.same(final.content, m.content);
  t.same(final.usage.output_tokens, 10);
  const err = await anthropic.messages.create({ model: 'claude-nope', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof Anthropic.NotFoundError, String(err));
  const bad = await new Anthropic({ baseURL: h.origin, apiKey: 'wrong', maxRetries: 0 }).messages.create({ model, max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }).then(() => null, (e: unknown) => e);
  t.ok(bad instanceof Anthropic.AuthenticationError, String(bad));
  const count = await anthropic.messages.countTokens({ model, messages: [{ role: 'user', content: 'Hello there' }] });
  t.equal(count.input_tokens, m.usage.input_tokens, 'count_tokens counts the prompt create ran');
});

t.test('@anthropic-ai/sdk: tool_use → tool_result round trip, stop_sequences', async (t) => {
  const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Current weather in a city', input_schema: weather }];
  const question: Anthropic.MessageParam = { role: 'user', content: 'What is the weather in Paris?' };
  const first = await anthropic.messages.create({ model, max_tokens: 64, tools, tool_choice: { type: 'any' }, messages: [question] });
  t.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((b) => b.type === 'tool_use');
  t.ok(use !== undefined);
  if (use?.type !== 'tool_use') return;
  t.ok(ajv.validate(weather, use.input), JSON.stringify(use.input));
  const second = await anthropic.messages.create({
    model,
    max_tokens: 8,
    tools,
    tool_choice: { type: 'none' },
    messages: [question, { role: 'assistant', content: first.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 21 °C' }] }],
  });
  t.ok(['end_turn', 'max_tokens'].includes(second.stop_reason!), String(second.stop_reason));
  t.notOk(second.content.some((b) => b.type === 'tool_use'));
  const alone = await anthropic.messages.countTokens({ model, tools, tool_choice: { type: 'none' }, messages: [question] });
  t.ok(second.usage.input_tokens > alone.input_tokens + 5, `the tool call and result are part of the prompt (${second.usage.input_tokens} > ${alone.input_tokens})`);
  // Streamed tool use: input_json_delta pieces become the block's input.
  const s = anthropic.messages.stream({ model, max_tokens: 64, tools, tool_choice: { type: 'tool', name: 'get_weather' }, messages: [question] });
  const streamed = await s.finalMessage();
  const su = streamed.content.find((b) => b.type === 'tool_use');
  t.ok(su?.type === 'tool_use' && ajv.validate(weather, su.input), JSON.stringify(su));
  // A stop sequence taken from greedy output ends the text before it and is named.
  const g = await anthropic.messages.create({ model, max_tokens: 12, ...greedy, messages: [question] });
  const gt = g.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
  const stop = gt.slice(4, 7);
  if (stop.trim().length < 2) return;
  const cut = await anthropic.messages.create({ model, max_tokens: 12, ...greedy, stop_sequences: [stop], messages: [question] });
  t.equal(cut.stop_reason, 'stop_sequence');
  t.equal(cut.stop_sequence, stop);
  t.equal(cut.content.map((b) => (b.type === 'text' ? b.text : '')).join(''), gt.slice(0, gt.indexOf(stop)));
});

t.test('fill-in-the-middle: /v1/completions with suffix uses the FIM tokens', async (t) => {
  const tok = await loadTokenizer(h.modelDir);
  const prefix = 'def add(a, b):\n    ';
  const suffix = '\n\nprint(add(1, 2))\n';
  const r = await openai.completions.create({ model, prompt: prefix, suffix, max_tokens: 8, seed: 2 });
  t.equal(r.choices.length, 1);
  t.equal(typeof r.choices[0]!.text, 'string');
  const expected = 3 + tok.encode(prefix).length + tok.encode(suffix).length;
  t.equal(r.usage!.prompt_tokens, expected, '<|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>');
  const plain = await openai.completions.create({ model, prompt: prefix, max_tokens: 8, seed: 2 });
  t.equal(plain.usage!.prompt_tokens, tok.encode(prefix, { addSpecialTokens: true }).length, 'without suffix: the plain prompt');
});
