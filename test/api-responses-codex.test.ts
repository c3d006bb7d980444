import t from 'tap';
import OpenAI from 'openai';
import { loadConfig } from '../src/config/index.ts';
import { itemsToMessages, translateResponsesRequest } from '../src/api/responses-request.ts';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 21 item 2: the Responses API as Codex CLI 0.171 sends it (codex-rs/tools/src/tool_spec.rs):
// its own functions, a `namespace` tool grouping more of them (multi_agent_v1), the hosted
// `web_search` it sends with every turn, store: false, include, prompt_cache_key, client_metadata,
// reasoning {summary: "auto"}. Before: a 400 on tools[4].type 'namespace', then on web_search.
// Against the gateway users run (real nats-server, a real worker), the openai SDK as the client.

const spawnParams = { type: 'object', properties: { message: { type: 'string' } }, required: ['message'], additionalProperties: false };
const codexTools = [
  { type: 'function', name: 'exec_command', description: 'Runs a command.', strict: false, parameters: { type: 'object', properties: { cmd: { type: 'string' } }, required: ['cmd'], additionalProperties: false } },
  { type: 'namespace', name: 'multi_agent_v1', description: 'Tools for spawning and managing sub-agents.', tools: [
    { type: 'function', name: 'spawn_agent', description: 'Spawns a sub-agent.', strict: false, parameters: spawnParams },
    { type: 'function', name: 'wait_agent', description: 'Waits for a sub-agent.', strict: false, parameters: { type: 'object', properties: {}, additionalProperties: false } },
  ] },
  { type: 'web_search', external_web_access: false },
];
const codexFields = {
  store: false,
  include: ['reasoning.encrypted_content'],
  prompt_cache_key: '01a24de6-ab9d-7c91-acfd-465a635f66c5',
  client_metadata: { turn_id: 't1' },
  reasoning: { summary: 'auto' },
  parallel_tool_calls: true,
};

interface CallItem { type: string; name?: string; namespace?: string; call_id?: string; arguments?: string }

t.test('a namespaced call sent back is rendered under the name the model was offered', async (t) => {
  const msgs = itemsToMessages([
    { type: 'message', role: 'user', content: 'go' },
    { type: 'function_call', call_id: 'c1', name: 'spawn_agent', namespace: 'multi_agent_v1', arguments: '{}' },
    { type: 'function_call_output', call_id: 'c1', output: 'done' },
  ]);
  t.same(msgs[1]?.tool_calls?.[0]?.function.name, 'multi_agent_v1.spawn_agent');
  const { chat, tools } = translateResponsesRequest({ model: 'm', input: 'x', tools: codexTools as never, tool_choice: { type: 'function', name: 'spawn_agent' } }, []);
  t.same(chat.tools?.map((x) => x.function.name), ['exec_command', 'multi_agent_v1.spawn_agent', 'multi_agent_v1.wait_agent'], 'namespace functions offered by their qualified names');
  t.same(chat.tool_choice, { type: 'function', function: { name: 'multi_agent_v1.spawn_agent' } }, 'a bare name only one namespace has is that function');
  t.same(tools.dropped, [{ index: 2, type: 'web_search' }]);
  t.throws(() => translateResponsesRequest({ model: 'm', input: 'x', tools: codexTools as never }, [], 'refuse'), { code: 'HEARTH_ERR_HOSTED_TOOL', param: 'tools[2].type' }, 'server.hostedTools = refuse: a 400 naming the tool');
  t.throws(() => loadConfig({ env: { HEARTH_SERVER_HOSTED_TOOLS: 'ignore' } }), /server\.hostedTools/, 'the config key is validated');
  t.equal(loadConfig({ env: {} }).server.hostedTools, 'drop', 'dropping is the default');
});

t.test('Codex-shaped Responses requests through the NATS gateway', { skip: natsMissing() }, async (t) => {
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1 });
  const model = (await (await fetch(`${c.baseURL}/models`)).json() as { data: { id: string }[] }).data[0]!.id;
  const client = new OpenAI({ apiKey: 'none', baseURL: c.baseURL, maxRetries: 0 });

  await t.test('streamed: a forced namespaced call comes back as {name, namespace}; web_search is left out and said so', async (t) => {
    const { data: stream, response: raw } = await client.responses.create({
      model, input: [{ role: 'user', content: 'Spawn a helper.' }], tools: codexTools as never, tool_choice: 'required', stream: true, max_output_tokens: 120, ...codexFields,
    } as never).withResponse() as unknown as { data: AsyncIterable<{ type: string; item?: CallItem; response?: Record<string, unknown> }>; response: Response };
    t.equal(raw.status, 200, 'a 200, not a 400 on the namespace or web_search');
    t.equal(raw.headers.get('x-hearth-dropped-tools'), 'web_search', 'the header names what was left out, before the first event');
    const done: CallItem[] = [];
    let final: Record<string, unknown> | undefined;
    for await (const ev of stream) {
      if (ev.type === 'response.output_item.done' && ev.item?.type === 'function_call') done.push(ev.item);
      if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
    }
    t.ok(done.length >= 1, 'a call');
    const call = done[0]!;
    t.ok(call.name === 'spawn_agent' || call.name === 'wait_agent' || call.name === 'exec_command', `a tool of the request (${call.name})`);
    const calls = (final?.['output'] as CallItem[]).filter((o) => o.type === 'function_call');
    t.same(calls.map((o) => [o.name, o.namespace]), done.map((o) => [o.name, o.namespace]), 'the final response has the same calls');
    t.notOk(calls.some((o) => o.name?.includes('.')), 'no qualified name leaks out');
    for (const o of calls) if (o.name !== 'exec_command') t.equal(o.namespace, 'multi_agent_v1', `${o.name} carries its namespace`);
    t.same((final?.['tools'] as { type: string }[]).map((x) => x.type), ['function', 'namespace'], 'the echoed tools are the ones offered');
    t.match(String(final?.['hearth_notices']), /web_search/, 'the response says web_search was left out');
    t.equal(final?.['store'], false, 'store: false echoed');
    t.equal(final?.['max_output_tokens'], 120, 'the limit applied');
  });

  await t.test('plain: a forced namespaced function by name and namespace, then the call sent back with its output', async (t) => {
    const r = await client.responses.create({
      model, input: 'Spawn a helper.', tools: codexTools as never, tool_choice: { type: 'function', name: 'spawn_agent', namespace: 'multi_agent_v1' } as never, max_output_tokens: 120, ...codexFields,
    } as never) as unknown as { output: CallItem[]; status: string; max_output_tokens: number | null };
    const call = r.output.find((o) => o.type === 'function_call');
    t.same([call?.name, call?.namespace], ['spawn_agent', 'multi_agent_v1'], 'the forced function, under its namespace');
    t.same(Object.keys(JSON.parse(call?.arguments ?? 'null') as object), ['message'], 'arguments fit its schema');
    t.match(c.log(), /hosted tools left out/, 'a warn line in the gateway log');
    t.notMatch(c.log(), /Spawn a helper/, 'without the request contents');
    // Codex's next turn: the call (with its namespace) and its output; no max_output_tokens.
    const next = await client.responses.create({
      model,
      input: [
        { type: 'message', role: 'user', content: 'Spawn a helper.' },
        { type: 'function_call', call_id: call!.call_id, name: 'spawn_agent', namespace: 'multi_agent_v1', arguments: call!.arguments },
        { type: 'function_call_output', call_id: call!.call_id, output: 'spawned' },
        { type: 'reasoning', summary: [], encrypted_content: null },
      ],
      tools: codexTools as never, tool_choice: 'none', max_output_tokens: 8, ...codexFields,
    } as never) as unknown as { status: string; output: CallItem[] };
    t.equal(next.status, 'incomplete', 'answered (to its 8-token limit)');
    t.equal(next.output[0]?.type, 'message');
  });
});
