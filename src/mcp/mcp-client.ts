import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ExactEnvStdioTransport, type StdioSpec } from './stdio-transport.ts';

// One connection to one MCP server through the official SDK's Client: list its tools, call one.
// Transports: stdio (our own, for the exact environment: stdio-transport.ts), Streamable HTTP, and
// the older HTTP+SSE for servers that still speak only that — tried after Streamable HTTP fails,
// as the spec's backwards-compatibility section describes
// (https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#backwards-compatibility).

export interface McpTool {
  readonly name: string;
  readonly description?: string;
  readonly inputSchema: Record<string, unknown>;
  /** annotations.readOnlyHint (allowed_tools {read_only: true} keeps only these). */
  readonly readOnly: boolean;
  readonly annotations?: Record<string, unknown>;
}

/** A tool's result as the Responses API's mcp_call carries it: text output, or an error. */
export interface McpCallResult {
  readonly output: string;
  readonly isError: boolean;
}

export interface McpConnection {
  listTools(signal: AbortSignal): Promise<McpTool[]>;
  callTool(name: string, args: Record<string, unknown>, signal: AbortSignal): Promise<McpCallResult>;
  close(): Promise<void>;
  /** Set once the transport closed (a stdio server that exited): reconnect. */
  readonly closed: boolean;
}

type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

export type McpTarget =
  | { readonly kind: 'stdio'; readonly spec: StdioSpec }
  | { readonly kind: 'url'; readonly url: URL; readonly headers: Readonly<Record<string, string>>; readonly transport: 'streamable-http' | 'sse' | 'auto'; readonly fetch?: Fetch };

const CLIENT_INFO = { name: 'hearth', version: '0.1.0' };

/** A tool result's content as text: text parts as they are, anything else as its JSON. */
export function resultText(result: { content?: unknown; structuredContent?: unknown }): string {
  const parts = Array.isArray(result.content) ? (result.content as { type?: string; text?: unknown }[]) : [];
  if (parts.length === 0 && result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return parts.map((p) => (p.type === 'text' && typeof p.text === 'string' ? p.text : JSON.stringify(p))).join('\n');
}

async function open(transport: Transport, signal: AbortSignal): Promise<{ client: Client; state: { closed: boolean } }> {
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  const state = { closed: false };
  await client.connect(transport, { signal });
  client.onclose = () => {
    state.closed = true;
  };
  return { client, state };
}

function httpTransport(t: Extract<McpTarget, { kind: 'url' }>, sse: boolean): Transport {
  const requestInit: RequestInit = { headers: { ...t.headers } };
  const opts = { requestInit, ...(t.fetch === undefined ? {} : { fetch: t.fetch }) };
  return sse ? new SSEClientTransport(t.url, opts) : new StreamableHTTPClientTransport(t.url, opts);
}

export async function connectMcp(target: McpTarget, signal: AbortSignal): Promise<McpConnection> {
  let opened: { client: Client; state: { closed: boolean } };
  let stdio: ExactEnvStdioTransport | null = null;
  if (target.kind === 'stdio') {
    stdio = new ExactEnvStdioTransport(target.spec);
    try {
      opened = await open(stdio, signal);
    } catch (e) {
      await stdio.close().catch(() => undefined);
      throw new Error(`${(e as Error).message}${stdio.stderrTail === '' ? '' : ` (stderr: ${stdio.stderrTail.trim().slice(-300)})`}`);
    }
  } else if (target.transport === 'sse') {
    opened = await open(httpTransport(target, true), signal);
  } else {
    try {
      opened = await open(httpTransport(target, false), signal);
    } catch (e) {
      if (target.transport !== 'auto' || signal.aborted) throw e;
      opened = await open(httpTransport(target, true), signal);
    }
  }
  const { client, state } = opened;
  return {
    get closed() {
      return state.closed;
    },
    async listTools(sig) {
      const tools: McpTool[] = [];
      let cursor: string | undefined;
      // Pages until the server says there are no more (bounded: a server cannot keep us forever).
      for (let page = 0; page < 32; page++) {
        const r = await client.listTools(cursor === undefined ? {} : { cursor }, { signal: sig });
        for (const t of r.tools) {
          const ann = t.annotations as Record<string, unknown> | undefined;
          tools.push({ name: t.name, ...(t.description === undefined ? {} : { description: t.description }), inputSchema: t.inputSchema as Record<string, unknown>, readOnly: ann?.['readOnlyHint'] === true, ...(ann === undefined ? {} : { annotations: ann }) });
        }
        cursor = r.nextCursor;
        if (cursor === undefined) break;
      }
      return tools;
    },
    async callTool(name, args, sig) {
      const r = await client.callTool({ name, arguments: args }, undefined, { signal: sig });
      return { output: resultText(r as { content?: unknown; structuredContent?: unknown }), isError: r.isError === true };
    },
    async close() {
      state.closed = true;
      await client.close().catch(() => undefined);
    },
  };
}
