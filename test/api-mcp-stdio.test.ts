import t from 'tap';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import type { Test } from 'tap';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { everythingStdio, writeMcpConfig } from './helpers/mcp.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 26 over stdio: the operator configures the real @modelcontextprotocol/server-everything
// (npm) in an mcpServers file; the openai SDK's responses.create names it by label with a forced
// tool_choice (random-weight model: the call is forced and its arguments constrained to the tool's
// schema, so each run is deterministic). Real NATS, a real worker.

const keyA = `key-a-${randomBytes(12).toString('hex')}`;
const keyB = `key-b-${randomBytes(12).toString('hex')}`;

type Item = { type: string; [k: string]: unknown };

/** responses.create with a plain body: the SDK's types have no `seed`, which hearth reads (and tool_choice {type: 'mcp'} is OpenAI's own). */
function create(client: OpenAI, body: Record<string, unknown>): Promise<OpenAI.Responses.Response> & Promise<AsyncIterable<{ type: string; response?: { output: unknown[] } }>> {
  return client.responses.create(body as never) as never;
}

t.test('hosted mcp tools over stdio', { skip: natsMissing() }, async (t) => {
  const file = writeMcpConfig({
    // GZIP_ALLOWED_DOMAINS makes gzip-file-as-resource throw for any URL it is given.
    everything: everythingStdio({ HEARTH_MCP_MARK: 'given', GZIP_ALLOWED_DOMAINS: 'none.invalid' }, { allowedKeys: [keyA] }),
  });
  // A variable of the gateway's own environment must not reach the server.
  process.env['HEARTH_MCP_LEAK'] = 'leaked';
  t.teardown(() => {
    delete process.env['HEARTH_MCP_LEAK'];
  });
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, flags: { 'mcp.configFile': file, 'server.apiKeys': `${keyA},${keyB}` } });
  const model = ((await (await fetch(`${c.baseURL}/models`, { headers: { authorization: `Bearer ${keyA}` } })).json()) as { data: { id: string }[] }).data[0]!.id;
  const a = new OpenAI({ apiKey: keyA, baseURL: c.baseURL, maxRetries: 0 });
  const b = new OpenAI({ apiKey: keyB, baseURL: c.baseURL, maxRetries: 0 });
  const tool = (extra: Record<string, unknown> = {}): never => ({ type: 'mcp', server_label: 'everything', require_approval: 'never', ...extra }) as never;
  const force = (name: string): never => ({ type: 'mcp', server_label: 'everything', name }) as never;

  await t.test('a forced call: mcp_list_tools, an mcp_call with the server\'s real output, a final message', async (t) => {
    const r = await create(a, { model, input: 'Add two numbers.', tools: [tool()], tool_choice: force('get-sum'), max_output_tokens: 24, seed: 3 });
    const out = r.output as unknown as Item[];
    t.same(out.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], 'items in order');
    const listed = out[0]!['tools'] as { name: string; input_schema: object }[];
    t.ok(listed.some((x) => x.name === 'get-sum') && listed.some((x) => x.name === 'echo'), `the server's own tool list (${listed.length} tools)`);
    const call = out[1]!;
    t.equal(call['server_label'], 'everything');
    t.equal(call['name'], 'get-sum');
    const args = JSON.parse(call['arguments'] as string) as { a: number; b: number };
    t.equal(typeof args.a, 'number', 'arguments follow the tool schema');
    t.equal(call['output'], `The sum of ${args.a} and ${args.b} is ${args.a + args.b}.`, 'the output is what server-everything computed');
    t.equal(call['error'], null);
    t.equal(call['status'], 'completed');
    t.equal(r.status, 'completed');
    t.ok((r.usage?.output_tokens ?? 0) > 0, 'usage counts both turns');
  });

  await t.test('the same, streamed: events as OpenAI names them, and the same items', async (t) => {
    const stream = await create(a, { model, input: 'Add two numbers.', tools: [tool()], tool_choice: force('get-sum'), max_output_tokens: 24, seed: 3, stream: true });
    const types: string[] = [];
    const events: { type: string; item?: { type: string } }[] = [];
    let final: Item[] = [];
    for await (const e of stream) {
      types.push(e.type);
      events.push(e as { type: string; item?: { type: string } });
      if (e.type === 'response.completed') final = e.response!.output as Item[];
    }
    const at = (ty: string): number => types.indexOf(ty);
    for (const ty of ['response.created', 'response.mcp_list_tools.in_progress', 'response.mcp_list_tools.completed', 'response.mcp_call_arguments.delta', 'response.mcp_call_arguments.done', 'response.mcp_call.in_progress', 'response.mcp_call.completed', 'response.completed']) {
      t.ok(at(ty) >= 0, `${ty} sent`);
    }
    t.ok(at('response.mcp_list_tools.completed') < at('response.mcp_call_arguments.delta'), 'tools listed before the call');
    t.ok(at('response.mcp_call_arguments.done') < at('response.mcp_call.in_progress') && at('response.mcp_call.in_progress') < at('response.mcp_call.completed'), 'arguments, then the call runs');
    const messageAdded = events.findIndex((e) => e.type === 'response.output_item.added' && e.item?.type === 'message');
    t.ok(at('response.mcp_call.completed') < messageAdded, 'the answer comes after the result');
    const out = final;
    t.same(out.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message']);
    const args = JSON.parse(out[1]!['arguments'] as string) as { a: number; b: number };
    t.equal(out[1]!['output'], `The sum of ${args.a} and ${args.b} is ${args.a + args.b}.`, 'real output in the streamed response');
  });

  await t.test('approval round trip: mcp_approval_request, then mcp_approval_response runs the call', async (t) => {
    const r1 = await create(a, { model, input: 'Add two numbers.', tools: [tool({ require_approval: 'always' })], tool_choice: force('get-sum'), max_output_tokens: 24, seed: 5 });
    const out1 = r1.output as unknown as Item[];
    t.same(out1.map((o) => o.type), ['mcp_list_tools', 'mcp_approval_request'], 'the response stops at the request');
    const req = out1[1]!;
    t.equal(req['name'], 'get-sum');
    const r2 = await create(a, {
      model,
      previous_response_id: r1.id,
      input: [{ type: 'mcp_approval_response', approval_request_id: req['id'] as string, approve: true }] as never,
      tools: [tool({ require_approval: 'always' })],
      max_output_tokens: 16,
      seed: 5,
    });
    const out2 = r2.output as unknown as Item[];
    t.equal(out2[0]?.type, 'mcp_call', 'the approved call runs first');
    t.notOk(out2.some((o) => o.type === 'mcp_list_tools'), 'the listing is reused from the chain, not repeated');
    t.equal(out2[0]!['approval_request_id'], req['id']);
    const args = JSON.parse(req['arguments'] as string) as { a: number; b: number };
    t.equal(out2[0]!['arguments'], req['arguments'], 'with the arguments that were approved');
    t.equal(out2[0]!['output'], `The sum of ${args.a} and ${args.b} is ${args.a + args.b}.`);
    t.equal(out2.at(-1)?.type, 'message', 'then the model answers');
    const again = await create(a, { model, previous_response_id: r2.id, input: [{ type: 'mcp_approval_response', approval_request_id: req['id'] as string, approve: true }] as never, tools: [tool()], max_output_tokens: 4 }).catch((e: { status?: number }) => e);
    t.equal((again as { status?: number }).status, 400, 'an approval cannot run a call twice');
  });

  await t.test('a declined approval runs nothing; the model is told and answers', async (t) => {
    const r1 = await create(a, { model, input: 'Add two numbers.', tools: [tool({ require_approval: { always: { tool_names: ['get-sum'] } } })], tool_choice: force('get-sum'), max_output_tokens: 24, seed: 5 });
    const req = (r1.output as unknown as Item[]).find((o) => o.type === 'mcp_approval_request')!;
    t.ok(req, 'get-sum is on the always list');
    const r2 = await create(a, { model, previous_response_id: r1.id, input: [{ type: 'mcp_approval_response', approval_request_id: req['id'], approve: false }], tools: [tool()], max_output_tokens: 8, seed: 5 });
    const out2 = r2.output as unknown as Item[];
    t.notOk(out2.some((o) => o.type === 'mcp_call' && o['approval_request_id'] === req['id']), 'the declined call never ran');
    t.equal(out2.at(-1)?.type, 'message');
    t.equal(r2.status, 'completed');
  });

  await t.test('a tool that throws: the error is the mcp_call\'s, the model reads it and answers', async (t) => {
    const r = await create(a, { model, input: 'Compress a file.', tools: [tool({ allowed_tools: ['gzip-file-as-resource'] })], tool_choice: force('gzip-file-as-resource'), max_output_tokens: 200, seed: 2 });
    const out = r.output as unknown as Item[];
    const call = out.find((o) => o.type === 'mcp_call')!;
    t.ok(call, 'a call was made');
    t.equal(call['status'], 'failed');
    t.match(String(call['error']), /allowed domains|Unsupported URL protocol|Error processing file|Invalid/, `the server's error: ${String(call['error']).slice(0, 160)}`);
    t.equal(call['output'], null);
    t.equal(out.at(-1)?.type, 'message', 'the response still ends with the model\'s answer');
    t.equal(r.status, 'completed');
    const listed = out[0]!['tools'] as unknown[];
    t.ok(listed.length > 1, 'the listing shows every tool; allowed_tools limits what the model is offered');
  });

  await t.test('a stdio server gets exactly the env the config gives, plus PATH', async (t) => {
    const r = await create(a, { model, input: 'Show the environment.', tools: [tool({ allowed_tools: ['get-env'] })], tool_choice: force('get-env'), max_output_tokens: 48, seed: 1 });
    const call = (r.output as unknown as Item[]).find((o) => o.type === 'mcp_call')!;
    const env = JSON.parse(call['output'] as string) as Record<string, string>;
    // tap's processinfo adds NODE_OPTIONS and its _TAPJS_* variables to every node child spawned
    // under it (it wraps child_process); outside tap they are not there.
    const own = Object.keys(env).filter((k) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_'));
    t.same(own.sort(), ['GZIP_ALLOWED_DOMAINS', 'HEARTH_MCP_MARK', 'PATH'], 'nothing else: no HOME, USER, SHELL, no gateway variable');
    for (const k of ['HOME', 'USER', 'SHELL', 'LOGNAME', 'TERM']) t.notOk(k in env, `no ${k}`);
    t.equal(env['HEARTH_MCP_MARK'], 'given');
    t.notOk('HEARTH_MCP_LEAK' in env);
  });

  await t.test('which keys may use a configured server', async (t) => {
    const denied = await create(b, { model, input: 'hi', tools: [tool()], max_output_tokens: 4 }).catch((e: { status?: number; error?: { code?: string } }) => e);
    t.equal((denied as { status?: number }).status, 403, 'a key the config does not list gets a 403');
    t.match(JSON.stringify(denied), /allowedKeys/, `the message says where access is granted: ${JSON.stringify(denied).slice(0, 300)}`);
    const listA = (await (await fetch(`${c.baseURL}/mcp/servers`, { headers: { authorization: `Bearer ${keyA}` } })).json()) as { data: { server_label: string; transport: string }[] };
    t.same(listA.data, [{ object: 'mcp_server', server_label: 'everything', transport: 'stdio' }], 'key A sees the server (label and transport only)');
    const listB = (await (await fetch(`${c.baseURL}/mcp/servers`, { headers: { authorization: `Bearer ${keyB}` } })).json()) as { data: unknown[] };
    t.same(listB.data, [], 'key B sees none');
    const unknown = await create(a, { model, input: 'hi', tools: [{ type: 'mcp', server_label: 'nope' } as never], max_output_tokens: 4 }).catch((e: { status?: number }) => e);
    t.equal((unknown as { status?: number }).status, 400, 'a label nobody configured, with no server_url, is a 400');
  });
});
