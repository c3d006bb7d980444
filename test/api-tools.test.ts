import { Ajv } from 'ajv';
import t, { type Test } from 'tap';
import { validatorFor } from '../src/api/openapi.ts';
import { startHearth } from './helpers/hearth.ts';

// Function calling over the real engine and the real Qwen3 template. The model is random, so
// tool_choice required/named must still yield valid calls (constrained decoding), none must never
// yield one, and the streamed deltas must reassemble into exactly the non-streamed calls.

const h = await startHearth(t, { workers: 1, inProcess: true });
const isResponse = validatorFor('CreateChatCompletionResponse');
const isChunk = validatorFor('CreateChatCompletionStreamResponse');
type Json = Record<string, any>;

const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'], additionalProperties: false } } },
  { type: 'function', function: { name: 'add', description: 'Add two integers', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'], additionalProperties: false } } },
];
const ajv = new Ajv();
const validators = new Map(tools.map((x) => [x.function.name, ajv.compile(x.function.parameters)]));
const msgs = [{ role: 'user', content: 'What is the weather in Paris, and what is 2+3?' }];

async function post(body: Json): Promise<{ status: number; body: Json }> {
  const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: h.modelId, messages: msgs, tools, max_tokens: 120, ...body }) });
  return { status: r.status, body: (await r.json()) as Json };
}

async function stream(body: Json): Promise<Json[]> {
  const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: h.modelId, messages: msgs, tools, max_tokens: 120, ...body, stream: true }) });
  const text = await r.text();
  const data = text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
  if (data.at(-1) !== '[DONE]') throw new Error(`no [DONE]: ${text.slice(-300)}`);
  return data.slice(0, -1).map((d) => JSON.parse(d) as Json);
}

/** Rebuilds tool calls from stream deltas the way the openai SDK's stream helper does. */
function assemble(chunks: Json[]): { content: string; calls: Json[]; finish: string | null } {
  let content = '';
  const calls: Json[] = [];
  let finish: string | null = null;
  for (const c of chunks) {
    const ch = c.choices[0];
    if (ch === undefined) continue;
    content += ch.delta.content ?? '';
    for (const d of ch.delta.tool_calls ?? []) {
      if (d.id !== undefined) {
        calls[d.index] = { id: d.id, type: d.type, function: { name: d.function.name, arguments: d.function.arguments ?? '' } };
      } else calls[d.index]!.function.arguments += d.function.arguments;
    }
    finish = ch.finish_reason ?? finish;
  }
  return { content, calls, finish };
}

function checkCalls(t: Test, calls: Json[], allowed: string[]): void {
  t.ok(calls.length >= 1, `${calls.length} call(s)`);
  for (const c of calls) {
    t.match(c.id, /^call_[A-Za-z0-9]{24}$/);
    t.equal(c.type, 'function');
    t.ok(allowed.includes(c.function.name), c.function.name);
    const args = JSON.parse(c.function.arguments);
    const v = validators.get(c.function.name)!;
    t.ok(v(args), `arguments validate: ${c.function.arguments}`);
  }
}

t.test('required: always at least one valid call, finish_reason tool_calls', async (t) => {
  for (const seed of [1, 2, 3]) {
    const r = await post({ tool_choice: 'required', seed });
    t.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    t.ok(isResponse(r.body), JSON.stringify(isResponse.errors));
    const m = r.body.choices[0].message;
    checkCalls(t, m.tool_calls, ['get_weather', 'add']);
    t.equal(r.body.choices[0].finish_reason, 'tool_calls');
  }
});

t.test('named: exactly that function; parallel_tool_calls false gives one call', async (t) => {
  for (const seed of [4, 5]) {
    const r = await post({ tool_choice: { type: 'function', function: { name: 'add' } }, seed });
    checkCalls(t, r.body.choices[0].message.tool_calls, ['add']);
    t.equal(r.body.choices[0].message.tool_calls.length, 1);
  }
  const one = await post({ tool_choice: 'required', parallel_tool_calls: false, seed: 9 });
  t.equal(one.body.choices[0].message.tool_calls.length, 1);
});

t.test('none: never a tool call, whatever the model writes', async (t) => {
  for (const seed of [1, 2, 3]) {
    const r = await post({ tool_choice: 'none', seed, max_tokens: 30 });
    t.equal(r.status, 200);
    t.notOk('tool_calls' in r.body.choices[0].message);
    t.not(r.body.choices[0].finish_reason, 'tool_calls');
    t.type(r.body.choices[0].message.content, 'string');
  }
});

t.test('streamed tool calls reassemble into exactly the non-streamed calls', async (t) => {
  for (const choice of ['required', { type: 'function', function: { name: 'get_weather' } }] as const) {
    const body = { tool_choice: choice, seed: 11 };
    const plain = await post(body);
    const chunks = await stream(body);
    t.ok(chunks.every((c) => isChunk(c)), JSON.stringify(isChunk.errors));
    const s = assemble(chunks);
    t.same(s.calls, plain.body.choices[0].message.tool_calls, 'same ids, names and arguments');
    t.equal(s.finish, 'tool_calls');
    t.equal(s.content, plain.body.choices[0].message.content ?? '', 'same content');
    // OpenAI's delta shape: the first delta of a call has index, id, type, name and empty arguments.
    const firsts = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).filter((d: Json) => d.id !== undefined);
    t.ok(firsts.every((d: Json) => d.type === 'function' && d.function.arguments === '' && typeof d.function.name === 'string'));
    const frags = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).filter((d: Json) => d.id === undefined);
    t.ok(frags.length > 1, `arguments arrive in ${frags.length} fragments`);
    t.ok(frags.every((d: Json) => Object.keys(d).sort().join() === 'function,index' && Object.keys(d.function).join() === 'arguments'));
  }
});

t.test('a tool round trip: assistant tool_calls and tool results go back through the template', async (t) => {
  const first = await post({ tool_choice: { type: 'function', function: { name: 'add' } }, seed: 3 });
  const call = first.body.choices[0].message.tool_calls[0];
  const followUp = await post({
    messages: [...msgs, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: call.id, content: '5' }],
    tool_choice: 'auto',
    seed: 3,
    max_tokens: 10,
  });
  t.equal(followUp.status, 200, JSON.stringify(followUp.body).slice(0, 300));
  t.ok(followUp.body.usage.prompt_tokens > first.body.usage.prompt_tokens, 'the call and its result are in the prompt');
});

t.test('auto with a strict tool: any call that appears validates', async (t) => {
  const strictTools = tools.map((x) => ({ ...x, function: { ...x.function, strict: true } }));
  for (const seed of [1, 2]) {
    const r = await post({ tools: strictTools, seed, max_tokens: 40 });
    t.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    for (const c of r.body.choices[0].message.tool_calls ?? []) t.ok(validators.get(c.function.name)!(JSON.parse(c.function.arguments)));
  }
});
