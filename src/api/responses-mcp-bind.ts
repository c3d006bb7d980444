import { HearthError } from '../errors/index.ts';
import { checkClientUrl, normalUrl, RefusedUrl, type McpServers, type McpServerSpec, type McpUrlServer } from '../mcp/index.ts';
import { checkMcpTool, isMcpTool, type McpToolBody } from './responses-mcp-tools.ts';
import type { CreateResponseBody } from './responses-types.ts';

// Each `mcp` tool of a request → the server hearth will speak to, checked before anything runs:
//   server_label alone            the operator's configured server of that name (mcp.configFile)
//   server_url = a configured URL the operator's server (its allowedKeys apply, its headers too)
//   any other server_url          the client's own server: refused when it resolves to loopback,
//                                 this machine or link-local (url-guard.ts); the client's headers
// A key the config does not allow gets a 403; nothing is connected yet.

export interface McpBinding {
  readonly index: number;
  readonly tool: McpToolBody;
  readonly label: string;
  /** The operator's server, or the client's URL (with its headers and a guarded fetch). */
  readonly server: { readonly kind: 'configured'; readonly spec: McpServerSpec } | { readonly kind: 'remote'; readonly spec: McpUrlServer; readonly guarded: true };
}

export async function bindMcpTools(body: CreateResponseBody, owner: string, servers: McpServers): Promise<McpBinding[]> {
  const out: McpBinding[] = [];
  const labels = new Set<string>();
  const tools = body.tools ?? [];
  for (let i = 0; i < tools.length; i++) {
    const raw = tools[i]!;
    if (!isMcpTool(raw)) continue;
    const t = checkMcpTool(raw as unknown as Record<string, unknown>, i);
    if (labels.has(t.server_label)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid 'tools[${i}].server_label': '${t.server_label}' is used by two mcp tools; labels must be unique.`], { param: `tools[${i}].server_label` });
    labels.add(t.server_label);
    const url = typeof t.server_url === 'string' && t.server_url !== '' ? t.server_url : null;
    const configured = url === null ? servers.get(t.server_label) : servers.byUrl(normalUrl(url));
    if (configured !== undefined) {
      if (!servers.mayUse(configured, owner)) throw new HearthError('HEARTH_ERR_MCP_FORBIDDEN', [configured.label], { param: `tools[${i}].server_label` });
      out.push({ index: i, tool: t, label: t.server_label, server: { kind: 'configured', spec: configured } });
      continue;
    }
    if (url === null) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid 'tools[${i}]': no MCP server labelled '${t.server_label}' is configured on this gateway; give its server_url, or ask the operator to add it to mcp.configFile.`], { param: `tools[${i}].server_label` });
    }
    try {
      await checkClientUrl(url, servers.config.urls);
    } catch (e) {
      if (e instanceof RefusedUrl) throw new HearthError('HEARTH_ERR_MCP_URL_REFUSED', [`tools[${i}].server_url`, e.message], { param: `tools[${i}].server_url` });
      throw e;
    }
    const spec: McpUrlServer = { kind: 'url', label: t.server_label, url, headers: { ...(t.headers ?? {}) }, transport: 'auto', owners: null };
    out.push({ index: i, tool: t, label: t.server_label, server: { kind: 'remote', spec, guarded: true } });
  }
  return out;
}

