import { HearthError } from '../errors/index.ts';
import type { ResponseInputItem } from './responses-types.ts';

// The Responses API's MCP items (https://platform.openai.com/docs/api-reference/responses/object),
// and how a conversation holding them is shown to the model. Pure.
//   mcp_list_tools        a server's tools as listed (kept in the chain: later turns reuse it
//                         instead of listing again — OpenAI's "cached per response chain")
//   mcp_call              a call hearth ran: arguments, and output or error
//   mcp_approval_request  a call waiting for the client's {type: mcp_approval_response,
//                         approval_request_id, approve} in the next request
// The model sees a call and its result as an assistant tool call plus a tool message, like any
// function call, so the chat template renders it in the model's own syntax.

export interface McpListedTool {
  name: string;
  description: string | null;
  input_schema: Record<string, unknown>;
  annotations: Record<string, unknown> | null;
}
export interface McpListToolsItem {
  type: 'mcp_list_tools';
  id: string;
  server_label: string;
  tools: McpListedTool[];
  error?: string | null;
}
export interface McpCallItem {
  type: 'mcp_call';
  id: string;
  server_label: string;
  name: string;
  arguments: string;
  output: string | null;
  error: string | null;
  status: 'in_progress' | 'completed' | 'failed' | 'incomplete';
  approval_request_id: string | null;
}
export interface McpApprovalRequestItem {
  type: 'mcp_approval_request';
  id: string;
  server_label: string;
  name: string;
  arguments: string;
}
export type McpOutputItem = McpListToolsItem | McpCallItem | McpApprovalRequestItem;

export interface McpApprovalResponseItem {
  readonly type: 'mcp_approval_response';
  readonly approval_request_id: string;
  readonly approve: boolean;
  readonly reason?: string | null;
}

const MCP_TYPES = new Set(['mcp_list_tools', 'mcp_call', 'mcp_approval_request', 'mcp_approval_response']);

export function isMcpItem(item: { readonly type?: unknown }): boolean {
  return typeof item.type === 'string' && MCP_TYPES.has(item.type);
}

/** The latest listing of `label` in the chain (its tools are reused rather than listed again). */
export function cachedListing(items: readonly ResponseInputItem[], label: string): McpListToolsItem | null {
  for (let i = items.length - 1; i >= 0; i--) {
    const it = items[i] as Partial<McpListToolsItem>;
    if (it.type === 'mcp_list_tools' && it.server_label === label && Array.isArray(it.tools) && (it.error === undefined || it.error === null)) return it as McpListToolsItem;
  }
  return null;
}

/** The approval responses in this request's input, each checked against a request in the chain. */
export function approvalResponses(input: readonly ResponseInputItem[], chain: readonly ResponseInputItem[]): { readonly request: McpApprovalRequestItem; readonly approve: boolean }[] {
  const out: { request: McpApprovalRequestItem; approve: boolean }[] = [];
  input.forEach((raw, i) => {
    if (raw.type !== 'mcp_approval_response') return;
    const r = raw as Partial<McpApprovalResponseItem>;
    const at = `input[${i}]`;
    if (typeof r.approval_request_id !== 'string') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Missing required parameter: '${at}.approval_request_id'.`], { param: `${at}.approval_request_id` });
    if (typeof r.approve !== 'boolean') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Missing required parameter: '${at}.approve' (true or false).`], { param: `${at}.approve` });
    const request = chain.find((x) => x.type === 'mcp_approval_request' && (x as McpApprovalRequestItem).id === r.approval_request_id) as McpApprovalRequestItem | undefined;
    if (request === undefined) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${at}.approval_request_id': no mcp_approval_request with that id in the conversation (send it with the previous_response_id of the response that asked).`], { param: `${at}.approval_request_id` });
    }
    if (chain.some((x) => x.type === 'mcp_call' && (x as McpCallItem).approval_request_id === request.id)) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${at}.approval_request_id': that call was already run.`], { param: `${at}.approval_request_id` });
    }
    out.push({ request, approve: r.approve });
  });
  return out;
}

/** What the model reads for a call the client declined. */
export const DECLINED_OUTPUT = 'The user declined this tool call.';

/**
 * The conversation with MCP items turned into items the chat translation knows: a call (run, or
 * declined) becomes a function_call and its function_call_output; listings, pending approval
 * requests and approval responses carry nothing for the model. `fnameOf` gives the function name
 * the model is offered a server's tool under.
 */
export function mcpItemsForModel(items: readonly ResponseInputItem[], fnameOf: (label: string, tool: string) => string): ResponseInputItem[] {
  const declined = new Set<string>();
  for (const it of items) {
    const r = it as Partial<McpApprovalResponseItem>;
    if (it.type === 'mcp_approval_response' && r.approve === false && typeof r.approval_request_id === 'string') declined.add(r.approval_request_id);
  }
  const out: ResponseInputItem[] = [];
  for (const it of items) {
    if (it.type === 'mcp_call') {
      const c = it as McpCallItem;
      out.push({ type: 'function_call', call_id: c.id, name: fnameOf(c.server_label, c.name), arguments: c.arguments });
      out.push({ type: 'function_call_output', call_id: c.id, output: c.error !== null && c.error !== undefined ? `Error: ${c.error}` : (c.output ?? '') });
    } else if (it.type === 'mcp_approval_request') {
      const q = it as McpApprovalRequestItem;
      if (!declined.has(q.id)) continue;
      out.push({ type: 'function_call', call_id: q.id, name: fnameOf(q.server_label, q.name), arguments: q.arguments });
      out.push({ type: 'function_call_output', call_id: q.id, output: DECLINED_OUTPUT });
    } else if (!isMcpItem(it)) {
      out.push(it);
    }
  }
  return out;
}
