import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { Ajv } from 'ajv';
import t from 'tap';
import { z } from 'zod';
import { startHearth } from './helpers/hearth.ts';

// LangChain.js (@langchain/openai ChatOpenAI) against a running hearth, as a user would wire it:
// only the base URL and key change.

const h = await startHearth(t, { workers: 2 });
const ajv = new Ajv();
const weatherParams = { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false };
const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'Current weather in a city', parameters: weatherParams } };
const llm = (extra: Record<string, unknown> = {}): ChatOpenAI => new ChatOpenAI({ model: h.modelId, apiKey: h.apiKey, configuration: { baseURL: h.baseURL }, maxRetries: 0, maxTokens: 80, ...extra });

t.comment(`hearth mode: ${h.mode}`);

t.test('bindTools: the tool call comes back parsed', async (t) => {
  const withTools = llm({ modelKwargs: { seed: 4 } }).bindTools([weather], { tool_choice: 'get_weather' });
  const msg = await withTools.invoke([new HumanMessage('What is the weather in Oslo?')]);
  t.equal(msg.tool_calls?.length, 1, JSON.stringify(msg.tool_calls));
  const call = msg.tool_calls![0]!;
  t.equal(call.name, 'get_weather');
  t.type(call.args, 'object', 'arguments parsed into an object');
  t.ok(ajv.validate(weatherParams, call.args), JSON.stringify(call.args));
  t.match(call.id, /^call_/);
  t.same(msg.invalid_tool_calls ?? [], []);
  // The round trip: the call and its result go back; the model answers.
  const followUp = await llm({ maxTokens: 8 }).bindTools([weather]).invoke([
    new HumanMessage('What is the weather in Oslo?'),
    new AIMessage({ content: '', tool_calls: [call] }),
    new ToolMessage({ content: '{"temperature":21}', tool_call_id: call.id! }),
  ]);
  t.ok(followUp instanceof AIMessage);
});

t.test('tool_choice any (required) streamed: chunks aggregate into a parsed call', async (t) => {
  const withTools = llm({ modelKwargs: { seed: 9 } }).bindTools([weather], { tool_choice: 'any' });
  let agg: Awaited<ReturnType<typeof withTools.invoke>> | undefined;
  for await (const chunk of await withTools.stream('Weather in Rome?')) agg = agg === undefined ? chunk : (agg.concat(chunk) as typeof agg);
  t.ok(agg !== undefined);
  t.equal(agg!.tool_calls?.[0]?.name, 'get_weather');
  t.ok(ajv.validate(weatherParams, agg!.tool_calls?.[0]?.args));
});

t.test('withStructuredOutput (json_schema) returns the parsed object', async (t) => {
  const schema = z.object({ city: z.string().max(20), rain: z.boolean(), days: z.array(z.enum(['mon', 'tue'])).max(2) });
  const structured = llm({ modelKwargs: { seed: 2 } }).withStructuredOutput(schema, { method: 'jsonSchema', name: 'forecast' });
  const out = await structured.invoke('Forecast for Oslo?');
  t.ok(schema.safeParse(out).success, JSON.stringify(out));
});

t.test('plain invoke and stream agree for the same seed', async (t) => {
  const a = await llm({ maxTokens: 10, modelKwargs: { seed: 77 } }).invoke('Hello');
  let text = '';
  for await (const c of await llm({ maxTokens: 10, modelKwargs: { seed: 77 } }).stream('Hello')) text += typeof c.content === 'string' ? c.content : '';
  t.equal(text, a.content);
  t.ok(String(a.content).length > 0);
});
