import { HearthError } from '../errors/index.ts';

// The Responses API's hosted `mcp` tool (https://platform.openai.com/docs/guides/tools-remote-mcp):
//   {type: "mcp", server_label, server_url?, allowed_tools?, require_approval?, headers?}
// hearth runs it itself (responses-mcp-route.ts). This file only reads and checks the tool entries,
// so the rest of the Responses code can ask `isMcpTool(t)` and never drop one as a hosted tool it
// does not run.

/** `allowed_tools`: a list of names, or OpenAI's filter object. */
export type McpAllowedTools = readonly string[] | { readonly tool_names?: readonly string[]; readonly read_only?: boolean };

/** `require_approval`: always / never / per tool ({never: {tool_names}} or {always: {tool_names}}). */
export type McpRequireApproval = 'always' | 'never' | { readonly always?: { readonly tool_names?: readonly string[] }; readonly never?: { readonly tool_names?: readonly string[] } };

export interface McpToolBody {
  readonly type: 'mcp';
  readonly server_label: string;
  readonly server_url?: string;
  readonly server_description?: string;
  readonly allowed_tools?: McpAllowedTools | null;
  readonly require_approval?: McpRequireApproval | null;
  readonly headers?: Readonly<Record<string, string>> | null;
}

/** Whether a Responses `tools[]` entry is a hosted MCP tool (hearth runs these; never drop one). */
export function isMcpTool(t: { readonly type?: unknown } | null | undefined): t is McpToolBody {
  return typeof t === 'object' && t !== null && t.type === 'mcp';
}

const LABEL = /^[A-Za-z0-9_-]{1,64}$/;

function bad(message: string, param: string): HearthError {
  return new HearthError('HEARTH_ERR_INVALID_REQUEST', [message], { param });
}

function names(v: unknown, param: string): readonly string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string') || v.length > 256) throw bad(`Invalid '${param}': expected a list of tool names (at most 256).`, param);
  return v as string[];
}

/** Checks one mcp tool entry beyond the schema (which lets any tool object through). */
export function checkMcpTool(raw: Record<string, unknown>, i: number): McpToolBody {
  const at = `tools[${i}]`;
  const label = raw['server_label'];
  if (typeof label !== 'string' || !LABEL.test(label)) throw bad(`Invalid '${at}.server_label': an mcp tool needs a server_label of 1-64 letters, digits, '_' or '-'.`, `${at}.server_label`);
  const url = raw['server_url'];
  if (url !== undefined && url !== null && (typeof url !== 'string' || url.length > 2048)) throw bad(`Invalid '${at}.server_url': expected an http(s) URL.`, `${at}.server_url`);
  const allowed = raw['allowed_tools'];
  if (Array.isArray(allowed)) names(allowed, `${at}.allowed_tools`);
  else if (typeof allowed === 'object' && allowed !== null) names((allowed as Record<string, unknown>)['tool_names'], `${at}.allowed_tools.tool_names`);
  else if (allowed !== undefined && allowed !== null) throw bad(`Invalid '${at}.allowed_tools': expected a list of tool names or {"tool_names": [...]}.`, `${at}.allowed_tools`);
  const approval = raw['require_approval'];
  if (typeof approval === 'object' && approval !== null) {
    const a = approval as Record<string, unknown>;
    for (const k of Object.keys(a)) {
      if (k !== 'always' && k !== 'never') throw bad(`Invalid '${at}.require_approval': expected 'always', 'never' or {"never": {"tool_names": [...]}} / {"always": {...}}.`, `${at}.require_approval`);
      names((a[k] as Record<string, unknown> | null)?.['tool_names'], `${at}.require_approval.${k}.tool_names`);
    }
  } else if (approval !== undefined && approval !== null && approval !== 'always' && approval !== 'never') {
    throw bad(`Invalid '${at}.require_approval': expected 'always', 'never' or {"never": {"tool_names": [...]}}.`, `${at}.require_approval`);
  }
  const headers = raw['headers'];
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers) || Object.values(headers).some((v) => typeof v !== 'string')) throw bad(`Invalid '${at}.headers': expected an object of header names to string values.`, `${at}.headers`);
  }
  return raw as unknown as McpToolBody;
}

/** Whether `tool` of this server may be offered to the model (allowed_tools). */
export function toolAllowed(t: McpToolBody, tool: string, readOnly: boolean): boolean {
  const a = t.allowed_tools;
  if (a === undefined || a === null) return true;
  if (Array.isArray(a)) return a.includes(tool);
  const f = a as { readonly tool_names?: readonly string[]; readonly read_only?: boolean };
  if (f.tool_names !== undefined && !f.tool_names.includes(tool)) return false;
  if (f.read_only === true && !readOnly) return false;
  return true;
}

/** Whether a call to `tool` waits for the client's approval. OpenAI's default is 'always'. */
export function needsApproval(t: McpToolBody, tool: string): boolean {
  const r = t.require_approval;
  if (r === undefined || r === null || r === 'always') return true;
  if (r === 'never') return false;
  if (r.never?.tool_names?.includes(tool) === true) return false;
  if (r.always?.tool_names?.includes(tool) === true) return true;
  // Only one list given: tools outside a `never` list need approval, outside an `always` list not.
  return r.never !== undefined || r.always === undefined;
}
