import t from 'tap';
import OpenAI from 'openai';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { everythingStdio, writeMcpConfig } from './helpers/mcp.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 26, the time bound: mcp.timeoutMs covers all the MCP work of one response. A configured
// stdio server that starts and never answers (a real process that reads nothing) must cost a
// response that bound and no more — a clear 424 naming the server and the setting — and must not
// hold the gateway: the start, other responses with a working server, and plain chat go on.

t.test('a configured MCP server that never answers', { skip: natsMissing() }, async (t) => {
  const file = writeMcpConfig({
    silent: { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1 << 30)'] },
    everything: everythingStdio(),
  });
  const timeoutMs = 3000;
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, flags: { 'mcp.configFile': file, 'mcp.timeoutMs': timeoutMs } });
  const model = ((await (await fetch(`${c.baseURL}/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
  const client = new OpenAI({ apiKey: 'none', baseURL: c.baseURL, maxRetries: 0 });
  const tool = (label: string): never => ({ type: 'mcp', server_label: label, require_approval: 'never' }) as never;

  const started = performance.now();
  const [silent, answered] = await Promise.all([
    client.responses.create({ model, input: 'List your tools.', tools: [tool('silent')], max_output_tokens: 8 }).catch((e: unknown) => e),
    // A response with a working server, sent at the same time, is not held behind the silent one.
    client.responses.create({ model, input: 'Add two numbers.', tools: [tool('everything')], tool_choice: { type: 'mcp', server_label: 'everything', name: 'get-sum' } as never, max_output_tokens: 16 }),
  ]);
  const waited = performance.now() - started;
  const err = silent as { status?: number; error?: { message?: string; code?: string } };
  t.equal(err.status, 424, 'the silent server is a 424');
  t.match(err.error?.message ?? '', /silent/, `the message names the server: ${err.error?.message}`);
  t.match(err.error?.message ?? '', /mcp\.timeoutMs/, 'and the setting that bounded it');
  t.ok(waited >= timeoutMs * 0.9, `it waited the bound (${Math.round(waited)} ms)`);
  t.ok(waited < 60_000, 'not the default 120 s');
  t.same((answered.output as unknown as { type: string }[]).map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], 'the working server answered meanwhile');

  const chat = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  t.equal(chat.choices.length, 1, 'the gateway serves on');
  const again = await client.responses.create({ model, input: 'List your tools.', tools: [tool('silent')], max_output_tokens: 8 }).catch((e: unknown) => e);
  t.equal((again as { status?: number }).status, 424, 'a second try is bounded the same way');
});
