import { planChatOffLoop, type ChatPlan } from './chat-request.ts';
import { checkOutput, type ToolCallOut } from './chat-route.ts';
import type { ChoiceFinish } from './choice-runner.ts';
import { HearthError, isHearthError } from '../errors/index.ts';
import { deadline as deadlineOf, guardedFetch, connectMcp, type McpLease, type McpServers } from '../mcp/index.ts';
import { runPlanChoice } from './plan-choice.ts';
import type { McpBinding } from './responses-mcp-bind.ts';
import { cachedListing, mcpItemsForModel, type McpApprovalRequestItem, type McpCallItem, type McpListedTool, type McpListToolsItem } from './responses-mcp-items.ts';
import { needsApproval, toolAllowed } from './responses-mcp-tools.ts';
import { ResponseOutputBuilder, type OutputItem, type ResponseStreamEvent } from './responses-events.ts';
import { responsesParam, translateResponsesRequest } from './responses-request.ts';
import { qualifiedName } from './responses-tools.ts';
import type { CreateResponseBody, ResponseInputItem } from './responses-types.ts';
import { admit, completionId, type ApiContext } from './route-support.ts';

// One response with hosted MCP tools, as OpenAI runs it
// (https://platform.openai.com/docs/guides/tools-remote-mcp): list each server's tools (or reuse
// the chain's listing), offer them to the model as functions whose arguments are constrained to
// the tool's input schema, run each call the model makes and feed the result back, until the
// model answers in text — or a call needs the client's approval (the response stops at an
// mcp_approval_request), or the client's own function is called. Bounded: at most
// mcp.maxRounds model turns (the last one may not call tools) and mcp.timeoutMs for all the MCP
// work of one response (a call past it fails, and the model is told so).
// Yields the typed stream events; returns what the response object needs. The route decides
// whether the events are streamed or only folded into the answer.

export interface McpLimits {
  /** Most model turns in one response. */
  readonly maxRounds: number;
  /** Time for all MCP work (listing, calls) of one response. */
  readonly timeoutMs: number;
}

export const MCP_DEFAULT_LIMITS: McpLimits = Object.freeze({ maxRounds: 8, timeoutMs: 120_000 });

/** A tool's output kept for the model: beyond this it is cut (a context holds only so much). */
export const MAX_TOOL_OUTPUT_CHARS = 32_768;

export interface McpRunInput {
  readonly ctx: ApiContext;
  readonly body: CreateResponseBody;
  readonly id: string;
  /** The chain before this request (previous_response_id), and this request's input items. */
  readonly history: readonly ResponseInputItem[];
  readonly input: readonly ResponseInputItem[];
  readonly bindings: readonly McpBinding[];
  readonly approvals: readonly { readonly request: McpApprovalRequestItem; readonly approve: boolean }[];
  readonly servers: McpServers;
  readonly limits: McpLimits;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

export interface McpRunResult {
  readonly output: readonly OutputItem[];
  readonly finish: ChoiceFinish;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The last turn's plan (its prompt is the whole conversation). */
  readonly plan: ChatPlan;
  readonly notices: readonly string[];
}

interface Offered {
  readonly binding: McpBinding;
  readonly tool: McpListedTool;
}

const clone = <T>(x: T): T => structuredClone(x);
const itemId = (prefix: string): string => completionId(prefix).replace('-', '_');

/** A function name the model can be offered ([A-Za-z0-9_-], ≤ 64). */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'tool';
}

function errorText(e: unknown): string {
  if (e instanceof Error && e.name === 'TimeoutError') return 'the MCP call timed out (mcp.timeoutMs)';
  return (e instanceof Error ? e.message : String(e)).slice(0, 2000);
}

export async function* runMcpResponse(p: McpRunInput): AsyncGenerator<ResponseStreamEvent, McpRunResult> {
  const bound = deadlineOf(p.signal, p.limits.timeoutMs);
  const deadline = bound.signal;
  const leases = new Map<string, Promise<McpLease>>();
  const lease = (b: McpBinding): Promise<McpLease> => {
    let l = leases.get(b.label);
    if (l === undefined) {
      l = b.server.kind === 'configured'
        ? p.servers.lease(b.server.spec, deadline)
        : connectMcp({ kind: 'url', url: new URL(b.server.spec.url), headers: b.server.spec.headers, transport: 'auto', fetch: guardedFetch(p.servers.config.urls) }, deadline).then((conn) => ({ conn, release: () => conn.close() }));
      leases.set(b.label, l);
    }
    return l;
  };
  const builder = new ResponseOutputBuilder();
  try {
    // 1. Each server's tools: the chain's listing when it has one, else listed now (an item).
    const listed = new Map<string, McpListedTool[]>();
    for (const b of p.bindings) {
      const cached = cachedListing(p.history, b.label);
      if (cached !== null) {
        listed.set(b.label, cached.tools);
        continue;
      }
      const item: McpListToolsItem = { type: 'mcp_list_tools', id: itemId('mcpl'), server_label: b.label, tools: [] };
      const ev: ResponseStreamEvent[] = [];
      const index = builder.append(item, ev);
      yield* ev;
      yield { type: 'response.output_item.added', output_index: index, item: clone(item) };
      yield { type: 'response.mcp_list_tools.in_progress', item_id: item.id, output_index: index };
      try {
        const tools = await (await lease(b)).conn.listTools(deadline);
        item.tools = tools.map((t) => ({ name: t.name, description: t.description ?? null, input_schema: t.inputSchema, annotations: t.annotations ?? null }));
      } catch (e) {
        item.error = errorText(e);
        yield { type: 'response.mcp_list_tools.failed', item_id: item.id, output_index: index };
        yield { type: 'response.output_item.done', output_index: index, item: clone(item) };
        throw new HearthError('HEARTH_ERR_MCP_SERVER', [b.label, item.error], { param: `tools[${b.index}]` });
      }
      yield { type: 'response.mcp_list_tools.completed', item_id: item.id, output_index: index };
      yield { type: 'response.output_item.done', output_index: index, item: clone(item) };
      listed.set(b.label, item.tools);
    }

    // 2. What the model is offered: each server's allowed tools, under names unique in the request.
    const clientNames = new Set((p.body.tools ?? []).flatMap((t) => (t.type === 'function' ? [(t as unknown as { name: string }).name] : [])));
    const byFname = new Map<string, Offered>();
    const fnameOf = new Map<string, string>();
    const counts = new Map<string, number>();
    for (const b of p.bindings) for (const t of listed.get(b.label) ?? []) counts.set(t.name, (counts.get(t.name) ?? 0) + 1);
    for (const b of p.bindings) {
      for (const t of listed.get(b.label) ?? []) {
        if (!toolAllowed(b.tool, t.name, t.annotations?.['readOnlyHint'] === true)) continue;
        let f = safeName(t.name);
        // Two servers with one tool name, or a client function of that name: the label tells them apart.
        if ((counts.get(t.name) ?? 0) > 1 || clientNames.has(f) || byFname.has(f)) f = safeName(`${b.label}__${t.name}`);
        byFname.set(f, { binding: b, tool: t });
        fnameOf.set(`${b.label}\0${t.name}`, f);
      }
    }
    const nameFor = (label: string, tool: string): string => fnameOf.get(`${label}\0${tool}`) ?? safeName(tool);
    const bindingOf = (label: string): McpBinding | undefined => p.bindings.find((b) => b.label === label);

    // 3. Calls the client approved in this request run first.
    for (const a of p.approvals) {
      if (!a.approve) continue;
      const b = bindingOf(a.request.server_label);
      const item: McpCallItem = { type: 'mcp_call', id: itemId('mcp'), server_label: a.request.server_label, name: a.request.name, arguments: a.request.arguments, output: null, error: null, status: 'in_progress', approval_request_id: a.request.id };
      const ev: ResponseStreamEvent[] = [];
      const index = builder.append(item, ev);
      yield* ev;
      yield { type: 'response.output_item.added', output_index: index, item: clone(item) };
      yield { type: 'response.mcp_call_arguments.done', item_id: item.id, output_index: index, arguments: item.arguments };
      yield* execute(item, index, b);
    }

    // 4. Model turns.
    const firstChoice = toolChoice(p.body.tool_choice, byFname, p.bindings);
    const clientTools = (p.body.tools ?? []).filter((t) => t.type !== 'mcp');
    const mcpTools = [...byFname].map(([name, o]) => ({ type: 'function', name, ...(o.tool.description === null ? {} : { description: o.tool.description }), parameters: toolSchema(o.tool.input_schema), strict: true }));
    const maxOut = p.body.max_output_tokens ?? null;
    let promptTokens = 0;
    let completionTokens = 0;
    let finish: ChoiceFinish = 'stop';
    let plan: ChatPlan | null = null;
    const notices: string[] = [];
    for (let round = 0; ; round++) {
      const last = round > 0 && (round >= p.limits.maxRounds - 1 || deadline.aborted);
      const choice = round === 0 ? firstChoice : firstChoice === 'none' || last ? 'none' : 'auto';
      const conversation = mcpItemsForModel([...p.history, ...p.input, ...(builder.output as unknown as ResponseInputItem[])], nameFor);
      const left = maxOut === null ? null : Math.max(1, maxOut - completionTokens);
      const body: CreateResponseBody = { ...p.body, input: conversation, tools: [...clientTools, ...mcpTools], tool_choice: choice, previous_response_id: null, ...(left === null ? {} : { max_output_tokens: left }) };
      const t = translateResponsesRequest(body, [], p.ctx.limits.hostedTools ?? 'drop');
      if (round === 0 && t.tools.dropped.length > 0) notices.push(`hosted tools left out: ${t.tools.dropped.map((d) => d.type).join(', ')}`);
      try {
        plan = await planChatOffLoop(t.chat, p.ctx.model, p.ctx.limits);
      } catch (e) {
        if (isHearthError(e)) (e as { param: string | null }).param = responsesParam(e.param);
        throw e;
      }
      admit(p.ctx, 1);
      const roundStart = builder.output.length;
      const pending = new Map<number, { item: McpCallItem | McpApprovalRequestItem; index: number; binding: McpBinding; ended: boolean }>();
      let text = '';
      let tokens = 0;
      for await (const ev of runPlanChoice(p.ctx, plan, `${p.id}_${round}`, p.signal)) {
        if (ev.type === 'tool_call_start' && byFname.has(ev.name)) {
          const o = byFname.get(ev.name)!;
          const item: McpCallItem | McpApprovalRequestItem = needsApproval(o.binding.tool, o.tool.name)
            ? { type: 'mcp_approval_request', id: itemId('mcpr'), server_label: o.binding.label, name: o.tool.name, arguments: '' }
            : { type: 'mcp_call', id: itemId('mcp'), server_label: o.binding.label, name: o.tool.name, arguments: '', output: null, error: null, status: 'in_progress', approval_request_id: null };
          const out: ResponseStreamEvent[] = [];
          const index = builder.append(item, out);
          yield* out;
          yield { type: 'response.output_item.added', output_index: index, item: clone(item) };
          pending.set(ev.index, { item, index, binding: o.binding, ended: false });
        } else if ((ev.type === 'tool_call_args' || ev.type === 'tool_call_end') && pending.has(ev.index)) {
          const c = pending.get(ev.index)!;
          if (ev.type === 'tool_call_args') {
            c.item.arguments += ev.fragment;
            if (c.item.type === 'mcp_call') yield { type: 'response.mcp_call_arguments.delta', item_id: c.item.id, output_index: c.index, delta: ev.fragment };
          } else {
            c.ended = true;
            if (c.item.type === 'mcp_call') yield { type: 'response.mcp_call_arguments.done', item_id: c.item.id, output_index: c.index, arguments: c.item.arguments };
            else yield { type: 'response.output_item.done', output_index: c.index, item: clone(c.item) };
          }
        } else {
          yield* builder.push(ev);
          if (ev.type === 'content') text += ev.text;
          if (ev.type === 'finish') {
            finish = ev.reason;
            tokens = ev.completionTokens;
          }
        }
      }
      promptTokens += plan.prompt.length;
      completionTokens += tokens;
      // Constrained output is checked as chat checks it: MCP calls under the names offered.
      const calls: ToolCallOut[] = [];
      for (const o of builder.output.slice(roundStart)) {
        if (o.type === 'function_call') calls.push({ id: o.call_id, type: 'function', function: { name: o.namespace === undefined ? o.name : qualifiedName(o.namespace, o.name), arguments: o.arguments } });
        else if (o.type === 'mcp_call' || o.type === 'mcp_approval_request') calls.push({ id: o.id, type: 'function', function: { name: nameFor(o.server_label, o.name), arguments: o.arguments } });
      }
      try {
        checkOutput(plan, text, calls, finish);
      } catch (e) {
        if (isHearthError(e)) (e as { param: string | null }).param = responsesParam(e.param);
        throw e;
      }
      if (finish === 'length') {
        for (const c of pending.values()) {
          if (c.item.type === 'mcp_call') c.item.status = 'incomplete';
          yield { type: 'response.output_item.done', output_index: c.index, item: clone(c.item) };
        }
        break;
      }
      let ran = 0;
      for (const c of pending.values()) {
        if (c.item.type !== 'mcp_call' || !c.ended) continue;
        yield* execute(c.item, c.index, c.binding);
        ran++;
      }
      const asked = [...pending.values()].some((c) => c.item.type === 'mcp_approval_request');
      const clientCalled = builder.output.slice(roundStart).some((o) => o.type === 'function_call');
      if (asked || clientCalled || ran === 0 || last || round + 1 >= p.limits.maxRounds) break;
    }
    yield* builder.finish(finish === 'length');
    return { output: builder.output, finish: finish === 'length' ? 'length' : 'stop', promptTokens, completionTokens, plan: plan!, notices };
  } finally {
    bound.clear();
    for (const l of leases.values()) void l.then((x) => x.release(), () => undefined);
  }

  /** Runs one call and finishes its item: output, or the error the model then reads as the result. */
  async function* execute(item: McpCallItem, index: number, b: McpBinding | undefined): AsyncGenerator<ResponseStreamEvent> {
    yield { type: 'response.mcp_call.in_progress', item_id: item.id, output_index: index };
    try {
      if (b === undefined) throw new Error(`the request has no mcp tool labelled '${item.server_label}'; send the tool again with the approval`);
      if (deadline.aborted) throw new Error(p.signal.aborted ? 'the client went away' : "the response's time for MCP calls ran out (mcp.timeoutMs)");
      let args: unknown = {};
      if (item.arguments.trim() !== '') args = JSON.parse(item.arguments);
      if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error('the arguments are not a JSON object');
      const r = await (await lease(b)).conn.callTool(item.name, args as Record<string, unknown>, deadline);
      const out = r.output.length > MAX_TOOL_OUTPUT_CHARS ? `${r.output.slice(0, MAX_TOOL_OUTPUT_CHARS)}\n[output cut at ${MAX_TOOL_OUTPUT_CHARS} characters]` : r.output;
      if (r.isError) item.error = out;
      else item.output = out;
    } catch (e) {
      item.error = errorText(e);
    }
    item.status = item.error === null ? 'completed' : 'failed';
    yield { type: item.error === null ? 'response.mcp_call.completed' : 'response.mcp_call.failed', item_id: item.id, output_index: index };
    yield { type: 'response.output_item.done', output_index: index, item: clone(item) };
  }
}

/** A listed tool's input schema as hearth offers it (the JSON Schema dialect marker dropped). */
function toolSchema(s: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = s;
  return rest.type === undefined ? { type: 'object', ...rest } : rest;
}

/**
 * The first turn's tool_choice. OpenAI's {type: "mcp", server_label, name?} names a server's tool
 * (or a server with one tool; a server with several: 'required'); later turns are 'auto' (or
 * 'none' on the last one).
 */
function toolChoice(c: CreateResponseBody['tool_choice'], offered: ReadonlyMap<string, Offered>, bindings: readonly McpBinding[]): NonNullable<CreateResponseBody['tool_choice']> {
  if (c === undefined || typeof c === 'string') return c ?? 'auto';
  if (c.type !== 'mcp') return c;
  const label = (c as { server_label?: unknown }).server_label;
  if (typeof label !== 'string' || !bindings.some((b) => b.label === label)) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'tool_choice': an mcp tool_choice needs the server_label of one of the request's mcp tools."], { param: 'tool_choice' });
  }
  const mine = [...offered].filter(([, o]) => o.binding.label === label && (c.name === undefined || o.tool.name === c.name));
  if (mine.length === 0) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid value for 'tool_choice': server '${label}' offers no tool${c.name === undefined ? '' : ` named '${String(c.name).slice(0, 64)}'`} (after allowed_tools).`], { param: 'tool_choice' });
  }
  return mine.length === 1 ? { type: 'function', name: mine[0]![0] } : 'required';
}
