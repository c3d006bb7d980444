import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, jsonSchema, streamText, tool } from 'ai';
import { Ajv } from 'ajv';
import t from 'tap';
import { startHearth } from './helpers/hearth.ts';

// The Vercel AI SDK (@ai-sdk/openai-compatible provider) against a running hearth.

const h = await startHearth(t, { workers: 2 });
const provider = createOpenAICompatible({ name: 'hearth', baseURL: h.baseURL, apiKey: h.apiKey, includeUsage: true });
const model = provider.chatModel(h.modelId);
const ajv = new Ajv();
const weatherParams = { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false } as const;
const addParams = { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'], additionalProperties: false } as const;

t.comment(`hearth mode: ${h.mode}`);

t.test('generateText with tools: the forced call is parsed, executed, its result recorded', async (t) => {
  const seen: unknown[] = [];
  const r = await generateText({
    model,
    prompt: 'What is the weather in Oslo? Also add 2 and 3.',
    maxOutputTokens: 80,
    seed: 6,
    maxRetries: 0,
    tools: {
      get_weather: tool({ description: 'Current weather in a city', inputSchema: jsonSchema<{ city: string; unit: string }>(weatherParams), execute: async (input) => { seen.push(input); return { temperature: 21, unit: input.unit }; } }),
      add: tool({ description: 'Add two integers', inputSchema: jsonSchema<{ a: number; b: number }>(addParams), execute: async ({ a, b }) => a + b }),
    },
    toolChoice: { type: 'tool', toolName: 'get_weather' },
  });
  t.equal(r.toolCalls.length, 1);
  t.equal(r.toolCalls[0]!.toolName, 'get_weather');
  t.ok(ajv.validate(weatherParams, r.toolCalls[0]!.input), JSON.stringify(r.toolCalls[0]!.input));
  t.same(seen, [r.toolCalls[0]!.input], 'execute ran with the parsed input');
  t.equal(r.toolResults.length, 1);
  t.equal(r.finishReason, 'tool-calls');
  t.ok(r.usage.inputTokens! > 0 && r.usage.outputTokens! > 0);
});

t.test('streamText gives the same text as generateText for the same seed', async (t) => {
  const opts = { model, prompt: 'Tell me a story.', maxOutputTokens: 12, seed: 31, maxRetries: 0 };
  const full = await generateText(opts);
  const s = streamText(opts);
  let text = '';
  for await (const d of s.textStream) text += d;
  t.equal(text, full.text);
  t.ok(text.length > 0);
  t.equal((await s.usage).outputTokens, full.usage.outputTokens);
  t.equal(await s.finishReason, full.finishReason);
});

t.test('streamText with a required tool streams the call', async (t) => {
  const s = streamText({
    model,
    prompt: 'Add 2 and 3.',
    maxOutputTokens: 60,
    seed: 12,
    maxRetries: 0,
    tools: { add: tool({ description: 'Add two integers', inputSchema: jsonSchema<{ a: number; b: number }>(addParams) }) },
    toolChoice: 'required',
  });
  const calls = await s.toolCalls;
  t.equal(calls.length >= 1, true);
  t.equal(calls[0]!.toolName, 'add');
  t.ok(ajv.validate(addParams, calls[0]!.input), JSON.stringify(calls[0]!.input));
});
