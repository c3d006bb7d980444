import t from 'tap';
import { ownerHash } from '../src/api/auth.ts';
import { needsApproval, toolAllowed, type McpToolBody } from '../src/api/responses-mcp-tools.ts';
import { forbiddenAddress, McpConfigError, parseMcpConfig, stdioEnvironment } from '../src/mcp/index.ts';

// Issue 26, the pure parts: the mcpServers file is checked at start and every problem says what to
// change; which addresses a client-given server_url may not reach; approval and allowed_tools rules.

const KEY = 'k'.repeat(16);

function problems(doc: unknown, keys: readonly string[] = [KEY]): string[] {
  try {
    parseMcpConfig(doc, keys, ownerHash, 'mcp.json');
  } catch (e) {
    if (e instanceof McpConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

t.test('the mcpServers format Claude Desktop / LM Studio / llama.cpp read', async (t) => {
  const cfg = parseMcpConfig(
    { mcpServers: { files: { command: 'npx', args: ['-y', 'server-filesystem', '/srv'], env: { A: '1' }, allowedKeys: [KEY] }, home: { url: 'http://192.168.1.5:8123/mcp', headers: { Authorization: 'Bearer x' }, allowedKeys: ['*'] }, old: { url: 'http://h/sse', type: 'sse' } } },
    [KEY],
    ownerHash,
  );
  const files = cfg.servers.get('files')!;
  t.equal(files.kind, 'stdio');
  t.ok(files.owners?.has(ownerHash(KEY)), 'allowedKeys become owner hashes (what ownerOf gives a request)');
  t.equal(cfg.servers.get('home')!.owners, null, '"*" is every key');
  t.same([...(cfg.servers.get('old')!.owners ?? [])], [], 'no allowedKeys while the gateway has keys: no key');
  t.equal((cfg.servers.get('old') as { transport: string }).transport, 'sse');
  t.ok(cfg.urls.has('http://192.168.1.5:8123/mcp'), 'configured URLs are known (a client naming one reaches the operator\'s server)');
  const open = parseMcpConfig({ mcpServers: { s: { command: 'x' } } }, [], ownerHash);
  t.equal(open.servers.get('s')!.owners, null, 'with auth off (loopback only) every client may');
});

t.test('every problem is named with what to write instead', async (t) => {
  t.match(problems({ servers: {} }), [/add 'mcpServers'/]);
  t.match(problems({ mcpServers: { a: { command: 'x', url: 'http://h' } } }), [/mcpServers\.a: give either 'command' .* or 'url'/]);
  t.match(problems({ mcpServers: { a: { comand: 'x' } } }), [/mcpServers\.a: add 'command'/, /unknown field 'comand'/]);
  t.match(problems({ mcpServers: { a: { url: 'ftp://h' } } }), [/mcpServers\.a\.url: write an http:\/\/ or https:\/\/ URL/]);
  t.match(problems({ mcpServers: { a: { url: 'http://h', type: 'ws' } } }), [/mcpServers\.a\.type: write one of/]);
  t.match(problems({ mcpServers: { 'a b': { command: 'x' } } }), [/server names are 1-64 letters/]);
  const leak = problems({ mcpServers: { a: { command: 'x', allowedKeys: ['not-a-configured-key'] } } });
  t.match(leak, [/mcpServers\.a\.allowedKeys\[0\]: not one of server\.apiKeys/]);
  t.notMatch(leak.join(' '), /not-a-configured-key/, 'a key is never quoted back');
  t.equal(problems({ mcpServers: { a: { command: 1 }, b: { url: 2 } } }).length, 2, 'all problems at once, not the first');
});

t.test('addresses a client-given server_url may not reach', async (t) => {
  const own = new Set(['192.168.1.20']);
  for (const ip of ['127.0.0.1', '127.8.9.10', '::1', '0.0.0.0', '::', '169.254.169.254', 'fe80::1', '::ffff:127.0.0.1', '192.168.1.20']) t.not(forbiddenAddress(ip, own), null, `${ip} refused`);
  for (const ip of ['192.168.1.5', '10.0.0.7', '8.8.8.8', '2001:db8::1']) t.equal(forbiddenAddress(ip, own), null, `${ip} allowed (a home's other devices, the internet)`);
});

t.test('require_approval and allowed_tools as OpenAI reads them', async (t) => {
  const tool = (x: Partial<McpToolBody>): McpToolBody => ({ type: 'mcp', server_label: 's', ...x });
  t.ok(needsApproval(tool({}), 'a'), "absent: 'always' (OpenAI's default)");
  t.notOk(needsApproval(tool({ require_approval: 'never' }), 'a'));
  t.notOk(needsApproval(tool({ require_approval: { never: { tool_names: ['a'] } } }), 'a'), 'listed under never');
  t.ok(needsApproval(tool({ require_approval: { never: { tool_names: ['a'] } } }), 'b'), 'not listed under never');
  t.ok(needsApproval(tool({ require_approval: { always: { tool_names: ['b'] } } }), 'b'));
  t.notOk(needsApproval(tool({ require_approval: { always: { tool_names: ['b'] } } }), 'a'));
  t.ok(toolAllowed(tool({}), 'x', false));
  t.notOk(toolAllowed(tool({ allowed_tools: ['y'] }), 'x', false));
  t.notOk(toolAllowed(tool({ allowed_tools: { read_only: true } }), 'x', false), 'read_only keeps only readOnlyHint tools');
  t.ok(toolAllowed(tool({ allowed_tools: { read_only: true } }), 'x', true));
});

t.test('a stdio server environment: the config env plus PATH, nothing else', async (t) => {
  t.same(stdioEnvironment({ env: { A: '1' } }, { PATH: '/bin', HOME: '/root', SECRET: 's' }), { A: '1', PATH: '/bin' });
  t.same(stdioEnvironment({ env: { PATH: '/opt' } }, { PATH: '/bin' }), { PATH: '/opt' }, 'a configured PATH wins');
});
