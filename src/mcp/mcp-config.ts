import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { normalUrl } from './url-guard.ts';

// The operator's MCP servers, in the `mcpServers` JSON that Claude Desktop, LM Studio (mcp.json),
// VS Code and llama.cpp's server read:
//   {"mcpServers": {
//     "files":  {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"], "env": {}},
//     "home":   {"url": "http://192.168.1.5:8123/mcp", "headers": {"Authorization": "Bearer …"}}}}
// plus one hearth field per server, `allowedKeys`: the API keys (server.apiKeys values, or "*" for
// all of them) that may use it. Without it no key may (a configured server runs with the
// operator's rights, so handing it to every key holder is a choice the operator writes down);
// with auth off (no keys, loopback only) every client may. Checked once at start with ajv; each
// problem names the server, the field and what to write instead.

export interface McpStdioServer {
  readonly kind: 'stdio';
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** ownerHash()es of the keys allowed; null = every key. */
  readonly owners: ReadonlySet<string> | null;
}

export interface McpUrlServer {
  readonly kind: 'url';
  readonly label: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** 'sse' for servers that speak only the old HTTP+SSE transport; otherwise Streamable HTTP first. */
  readonly transport: 'streamable-http' | 'sse' | 'auto';
  readonly owners: ReadonlySet<string> | null;
}

export type McpServerSpec = McpStdioServer | McpUrlServer;

export interface McpServersConfig {
  readonly servers: ReadonlyMap<string, McpServerSpec>;
  /** Configured URLs (normalUrl form): a client's server_url equal to one is the operator's. */
  readonly urls: ReadonlySet<string>;
}

export const EMPTY_MCP_CONFIG: McpServersConfig = Object.freeze({ servers: new Map(), urls: new Set<string>() });

const STRING_MAP = { type: 'object', additionalProperties: { type: 'string' } } as const;
const KEYS = { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true } as const;

const STDIO_SCHEMA = {
  type: 'object',
  required: ['command'],
  additionalProperties: false,
  properties: {
    type: { const: 'stdio' },
    command: { type: 'string', minLength: 1 },
    args: { type: 'array', items: { type: 'string' } },
    env: STRING_MAP,
    cwd: { type: 'string', minLength: 1 },
    allowedKeys: KEYS,
    description: { type: 'string' },
  },
} as const;

const URL_SCHEMA = {
  type: 'object',
  required: ['url'],
  additionalProperties: false,
  properties: {
    type: { enum: ['http', 'streamable-http', 'streamableHttp', 'sse'] },
    url: { type: 'string', pattern: '^https?://' },
    headers: STRING_MAP,
    allowedKeys: KEYS,
    description: { type: 'string' },
  },
} as const;

const FILE_SCHEMA = {
  type: 'object',
  required: ['mcpServers'],
  properties: { mcpServers: { type: 'object', propertyNames: { pattern: '^[A-Za-z0-9_-]{1,64}$' }, additionalProperties: { type: 'object' } } },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const checkFile = ajv.compile(FILE_SCHEMA);
const checkStdio = ajv.compile(STDIO_SCHEMA);
const checkUrl = ajv.compile(URL_SCHEMA);

export class McpConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'McpConfigError';
  }
}

/** One ajv error as a sentence that says what to change. */
function say(where: string, e: ErrorObject): string {
  const field = `${where}${e.instancePath.replace(/\//g, '.')}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${field}: unknown field '${String(e.params['additionalProperty'])}' (a stdio server takes command, args, env, cwd, allowedKeys; a URL server url, headers, type, allowedKeys)`;
    case 'required':
      return `${field}: add '${String(e.params['missingProperty'])}'`;
    case 'pattern':
      return field.endsWith('.url') ? `${field}: write an http:// or https:// URL` : `${field}: server names are 1-64 letters, digits, '_' or '-'`;
    case 'propertyNames':
      return `${where}: server names are 1-64 letters, digits, '_' or '-'`;
    case 'enum':
    case 'const':
      return `${field}: write one of ${JSON.stringify(e.params['allowedValues'] ?? e.params['allowedValue'])}`;
    default:
      return `${field}: ${e.message ?? 'is not valid'}`;
  }
}

/** The hash ownerOf() gives a request with this key (auth.ts ownerHash, passed in: mcp/ does not import api/). */
export type OwnerHash = (key: string) => string;

/**
 * Parses and checks an mcpServers document. `apiKeys`: the gateway's server.apiKeys (every
 * allowedKeys entry must be one of them, or "*").
 */
export function parseMcpConfig(doc: unknown, apiKeys: readonly string[], ownerHash: OwnerHash, source = 'mcp config'): McpServersConfig {
  const problems: string[] = [];
  if (!checkFile(doc)) throw new McpConfigError((checkFile.errors ?? []).map((e) => say(source, e)));
  const entries = Object.entries((doc as { mcpServers: Record<string, Record<string, unknown>> }).mcpServers);
  const servers = new Map<string, McpServerSpec>();
  const urls = new Set<string>();
  const known = new Set(apiKeys);
  for (const [label, raw] of entries) {
    const where = `${source}: mcpServers.${label}`;
    const isUrl = 'url' in raw;
    if (isUrl && 'command' in raw) {
      problems.push(`${where}: give either 'command' (a stdio server) or 'url' (an HTTP server), not both`);
      continue;
    }
    const check = isUrl ? checkUrl : checkStdio;
    if (!check(raw)) {
      problems.push(...(check.errors ?? []).map((e) => say(where, e)));
      continue;
    }
    const keys = (raw['allowedKeys'] as string[] | undefined) ?? null;
    let owners: Set<string> | null = new Set();
    if (keys !== null) {
      for (const k of keys) {
        if (k === '*') owners = null;
        // The key itself is never quoted back (it is a secret); its place in the list is.
        else if (!known.has(k)) problems.push(`${where}.allowedKeys[${keys.indexOf(k)}]: not one of server.apiKeys; list keys the gateway accepts, or "*" for all of them`);
        else owners?.add(ownerHash(k));
      }
    } else if (apiKeys.length === 0) {
      owners = null;
    }
    if (isUrl) {
      const t = raw['type'];
      const url = raw['url'] as string;
      servers.set(label, { kind: 'url', label, url, headers: (raw['headers'] as Record<string, string> | undefined) ?? {}, transport: t === 'sse' ? 'sse' : t === undefined ? 'auto' : 'streamable-http', owners });
      urls.add(normalUrl(url));
    } else {
      servers.set(label, { kind: 'stdio', label, command: raw['command'] as string, args: (raw['args'] as string[] | undefined) ?? [], env: (raw['env'] as Record<string, string> | undefined) ?? {}, ...(typeof raw['cwd'] === 'string' ? { cwd: raw['cwd'] } : {}), owners });
    }
  }
  if (problems.length > 0) throw new McpConfigError(problems);
  return { servers, urls };
}

/** Reads and checks the file at `path` (config mcp.configFile). */
export function loadMcpConfig(path: string, apiKeys: readonly string[], ownerHash: OwnerHash): McpServersConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new McpConfigError([`${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)}); fix mcp.configFile or create the file`]);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new McpConfigError([`${path}: not valid JSON (${(e as Error).message.slice(0, 200)})`]);
  }
  return parseMcpConfig(doc, apiKeys, ownerHash, path);
}

