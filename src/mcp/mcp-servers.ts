import { deadline } from './deadline.ts';
import { connectMcp, type McpConnection } from './mcp-client.ts';
import { HearthError } from '../errors/index.ts';
import { EMPTY_MCP_CONFIG, loadMcpConfig, McpConfigError, type McpServerSpec, type McpStdioServer, type McpServersConfig, type OwnerHash } from './mcp-config.ts';
import { normalUrl } from './url-guard.ts';

// The operator's configured MCP servers at run time: who may use which, and their connections.
// A stdio server is one long-lived child shared by every response (starting `npx some-server`
// takes seconds; MCP clients may send concurrent requests on one connection); it is started on
// first use and again after it exits. A configured URL server gets a connection per response,
// closed with it (Streamable HTTP sessions are cheap, and servers expire idle ones).

export interface McpLease {
  readonly conn: McpConnection;
  /** Closes a per-response connection; a shared stdio one stays up. */
  release(): Promise<void>;
}

export class McpServers {
  private readonly stdio = new Map<string, Promise<McpConnection>>();
  private closing = false;
  /** Aborted by close(): stdio connections still starting give up at once. */
  private readonly stopping = new AbortController();

  constructor(readonly config: McpServersConfig = EMPTY_MCP_CONFIG) {}

  get(label: string): McpServerSpec | undefined {
    return this.config.servers.get(label);
  }

  /** The configured server whose URL is `normalized` (a client's server_url naming it). */
  byUrl(normalized: string): McpServerSpec | undefined {
    for (const s of this.config.servers.values()) if (s.kind === 'url' && normalUrl(s.url) === normalized) return s;
    return undefined;
  }

  /** Whether the request owner (ownerOf: a key's hash, or 'anonymous') may use server `s`. */
  mayUse(s: McpServerSpec, owner: string): boolean {
    return s.owners === null || s.owners.has(owner);
  }

  /** The servers `owner` may use, for the chat box's list. */
  usableBy(owner: string): McpServerSpec[] {
    return [...this.config.servers.values()].filter((s) => this.mayUse(s, owner));
  }

  async lease(s: McpServerSpec, signal: AbortSignal): Promise<McpLease> {
    if (this.closing) throw new Error('the gateway is shutting down');
    if (s.kind === 'url') {
      const conn = await connectMcp({ kind: 'url', url: new URL(s.url), headers: s.headers, transport: s.transport }, signal);
      return { conn, release: () => conn.close() };
    }
    let p = this.stdio.get(s.label);
    if (p !== undefined) {
      // Shared with other responses, and waited for within this response's bound even while it is
      // still starting (a server that never answers must not hold every later response for the
      // connection's own minute). One that failed or closed is started again.
      const open = await abortable(p.then((c) => (c.closed ? null : c), () => null), signal);
      if (open !== null) return { conn: open, release: async () => undefined };
      if (this.stdio.get(s.label) === p) this.stdio.delete(s.label);
      p = this.stdio.get(s.label); // another response may have started it again meanwhile
    }
    p ??= this.start(s);
    const conn = await abortable(p, signal);
    return { conn, release: async () => undefined };
  }

  /** Starts a stdio server's shared connection. Not tied to one response's signal: the child
   *  outlives the response that started it. The gateway's close aborts it (a server that never
   *  answers its initialize would hold the shutdown for the whole minute). */
  private start(s: McpStdioServer): Promise<McpConnection> {
    const bound = deadline(this.stopping.signal, 60_000);
    const p = connectMcp({ kind: 'stdio', spec: s }, bound.signal);
    p.then(bound.clear, bound.clear);
    this.stdio.set(s.label, p);
    p.catch(() => this.stdio.delete(s.label));
    return p;
  }

  /** Stops every stdio child (gateway shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    this.stopping.abort(new Error('the gateway is shutting down'));
    const all = [...this.stdio.values()];
    this.stdio.clear();
    await Promise.all(all.map((p) => p.then((c) => c.close(), () => undefined)));
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * The gateway's servers from config mcp.configFile (null: none), checked now so a mistake stops the
 * start with every problem named. `warn` hears of servers no key may use (no allowedKeys while
 * the gateway has keys): a likely oversight, not an error.
 */
export function openMcpServers(configFile: string | null, apiKeys: readonly string[], ownerHash: OwnerHash, warn: (msg: string) => void = () => undefined): McpServers {
  if (configFile === null) return new McpServers();
  let config: McpServersConfig;
  try {
    config = loadMcpConfig(configFile, apiKeys, ownerHash);
  } catch (e) {
    if (e instanceof McpConfigError) throw new HearthError('HEARTH_ERR_MCP_CONFIG', [e.message]);
    throw e;
  }
  for (const s of config.servers.values()) {
    if (s.owners !== null && s.owners.size === 0) warn(`MCP server '${s.label}' has no allowedKeys, so no API key may use it; add "allowedKeys": ["*"] (or the keys) to it in ${configFile}`);
  }
  return new McpServers(config);
}
