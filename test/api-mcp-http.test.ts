import t from 'tap';
import OpenAI from 'openai';
import type { Test } from 'tap';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { startEverythingHttp, writeMcpConfig } from './helpers/mcp.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 26 over HTTP: the real server-everything, started by the test on loopback, over Streamable
// HTTP and over the older HTTP+SSE transport. Loopback is the gateway's own side of the machine, so
// a client may reach it only where the operator configured the URL; a client-given server_url on
// loopback is refused. Header values never reach a log or the response object.

type Item = { type: string; [k: string]: unknown };

/** responses.create with a plain body: the SDK's types have no `seed`, which hearth reads (and tool_choice {type: 'mcp'} is OpenAI's own). */
function create(client: OpenAI, body: Record<string, unknown>): Promise<OpenAI.Responses.Response> & Promise<AsyncIterable<{ type: string; response?: { output: unknown[] } }>> {
  return client.responses.create(body as never) as never;
}

const SECRET = 'cfg-secret-7f3a9c';
const CLIENT_SECRET = 'client-secret-b81d2e';

t.test('hosted mcp tools over Streamable HTTP and SSE', { skip: natsMissing() }, async (t) => {
  const httpUrl = await startEverythingHttp(t, 'streamableHttp');
  const sseUrl = await startEverythingHttp(t, 'sse');
  const file = writeMcpConfig({
    web: { url: httpUrl, headers: { 'x-hearth-test': SECRET } },
    // No "type": hearth tries Streamable HTTP, then falls back to SSE.
    old: { url: sseUrl },
  });
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, logLevel: 'debug', flags: { 'mcp.configFile': file } });
  const model = ((await (await fetch(`${c.baseURL}/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
  const client = new OpenAI({ apiKey: 'none', baseURL: c.baseURL, maxRetries: 0 });
  const sum = (label: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ model, input: 'Add two numbers.', tools: [{ type: 'mcp', server_label: label, require_approval: 'never', ...extra }], tool_choice: { type: 'mcp', server_label: label, name: 'get-sum' }, max_output_tokens: 24, seed: 3 }) as never;
  const checkSum = (t: Test, out: Item[]): void => {
    t.same(out.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], 'list, call, message');
    const call = out[1]!;
    const args = JSON.parse(call['arguments'] as string) as { a: number; b: number };
    t.equal(call['output'], `The sum of ${args.a} and ${args.b} is ${args.a + args.b}.`, "server-everything's own output");
  };

  await t.test('a configured Streamable HTTP server, by label', async (t) => {
    const r = await create(client, sum('web'));
    checkSum(t, r.output as unknown as Item[]);
  });

  await t.test('the same streamed', async (t) => {
    const stream = await create(client, { ...sum('web'), stream: true });
    const types: string[] = [];
    let final: Item[] = [];
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.completed') final = e.response!.output as Item[];
    }
    for (const ty of ['response.mcp_list_tools.in_progress', 'response.mcp_list_tools.completed', 'response.mcp_call_arguments.done', 'response.mcp_call.in_progress', 'response.mcp_call.completed']) t.ok(types.includes(ty), `${ty} sent`);
    checkSum(t, final);
  });

  await t.test('a configured URL given as server_url is the operator\'s server (allowed)', async (t) => {
    const r = await create(client, sum('mine', { server_url: httpUrl, headers: { authorization: `Bearer ${CLIENT_SECRET}` } }));
    checkSum(t, r.output as unknown as Item[]);
    const echoed = (r.tools[0] as unknown as { headers: Record<string, string> }).headers;
    t.same(echoed, { authorization: '<redacted>' }, 'header values are not echoed back (nor stored)');
  });

  await t.test('an SSE-only server (fallback from Streamable HTTP)', async (t) => {
    const r = await create(client, sum('old'));
    checkSum(t, r.output as unknown as Item[]);
  });

  await t.test('a client-given URL on loopback or this machine is refused', async (t) => {
    const port = new URL(httpUrl).port;
    for (const url of [`http://localhost:${port}/mcp`, `http://[::1]:${port}/mcp`, `http://0.0.0.0:${port}/mcp`, `http://127.0.0.2:${port}/mcp`, `http://169.254.169.254/latest`, `file:///etc/passwd`]) {
      const e = await create(client, sum('x', { server_url: url })).catch((err: unknown) => err) as { status?: number; error?: { code?: string; message?: string } };
      t.equal(e.status, 400, `${url}: 400`);
      t.match(e.error?.message ?? '', /^Invalid 'tools\[0\]\.server_url': the URL (resolves to (a loopback|an unspecified|a link-local) address|uses file)/, `${url}: says why`);
      t.match(JSON.stringify(e), /server_url/, `${url}: names server_url (${e.error?.message ?? ''})`);
    }
  });

  await t.test('header values never reach the log', async (t) => {
    const log = c.log();
    t.ok(log.length > 0, 'the gateway logged (debug)');
    t.notMatch(log, SECRET, 'configured header value absent');
    t.notMatch(log, CLIENT_SECRET, "client's header value absent");
  });
});
