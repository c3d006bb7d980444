import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ownerOf } from './auth.ts';
import { ChoiceCancelled } from './choice-runner.ts';
import { openNamedStream } from './event-stream.ts';
import { McpServers } from '../mcp/index.ts';
import type { ResponseStore } from './response-store.ts';
import { bindMcpTools } from './responses-mcp-bind.ts';
import { approvalResponses, isMcpItem } from './responses-mcp-items.ts';
import { MCP_DEFAULT_LIMITS, runMcpResponse, type McpLimits, type McpRunResult } from './responses-mcp-run.ts';
import { isMcpTool } from './responses-mcp-tools.ts';
import type { OutputItem, ResponseStreamEvent } from './responses-events.ts';
import { inputItems } from './responses-request.ts';
import type { CreateResponseBody, ResponseInputItem } from './responses-types.ts';
import { answerUnlessGone, completionId, watchDisconnect, type ApiContext } from './route-support.ts';

// POST /v1/responses when MCP is involved (an `mcp` tool, or MCP items in the conversation): the
// multi-turn run of responses-mcp-run.ts, answered whole or streamed, then stored like any
// response. And GET /v1/mcp/servers: the configured servers the caller's key may use (labels and
// kinds only: never a command, URL, header or env), which the status page's chat box offers.
// Headers a client sends for its server are used for that connection only: they are left out of
// the response object (and so of the store), and nothing here logs them.

export interface McpOptions {
  readonly servers: McpServers;
  readonly limits?: Partial<McpLimits>;
}

export interface McpResponses {
  /** Whether this request is MCP's to run. */
  applies(body: CreateResponseBody, history: readonly ResponseInputItem[]): boolean;
  respond(req: FastifyRequest, reply: FastifyReply, body: CreateResponseBody, history: readonly ResponseInputItem[]): Promise<unknown>;
}

/** The response's tools as echoed: an mcp tool's header values are not (they are credentials). */
function echoedTools(tools: CreateResponseBody['tools']): unknown[] {
  return (tools ?? []).map((t) => {
    if (!isMcpTool(t) || t.headers === undefined || t.headers === null) return t;
    return { ...t, headers: Object.fromEntries(Object.keys(t.headers).map((k) => [k, '<redacted>'])) };
  });
}

export function registerMcpResponses(app: FastifyInstance, ctx: ApiContext, store: ResponseStore, opts: McpOptions = { servers: new McpServers() }): McpResponses {
  const limits: McpLimits = { ...MCP_DEFAULT_LIMITS, ...opts.limits };
  const servers = opts.servers;

  app.get('/v1/mcp/servers', async (req) => ({
    object: 'list',
    data: servers.usableBy(ownerOf(req)).map((s) => ({ object: 'mcp_server', server_label: s.label, transport: s.kind === 'stdio' ? 'stdio' : s.transport === 'sse' ? 'sse' : 'streamable-http' })),
  }));

  const responseObject = (body: CreateResponseBody, id: string, createdAt: number, status: string, output: readonly OutputItem[], usage: object | null, finish: string | null, notices: readonly string[]): Record<string, unknown> => ({
    // The fields and their defaults as responses-route.ts's responseObject gives them.
    id,
    object: 'response',
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: finish === 'length' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: ctx.model.id,
    output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: null },
    store: body.store !== false,
    temperature: body.temperature ?? 1,
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: echoedTools(body.tools),
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
    ...(notices.length > 0 ? { hearth_notices: notices } : {}),
  });

  return {
    applies(body, history) {
      return (body.tools ?? []).some(isMcpTool) || history.some(isMcpItem) || inputItems(body.input).some(isMcpItem);
    },

    async respond(req, reply, body, history) {
      const owner = ownerOf(req);
      const input = inputItems(body.input);
      // Everything a client can get wrong is a plain 4xx before any event.
      const bindings = await bindMcpTools(body, owner, servers);
      const approvals = approvalResponses(input, history);
      const id = completionId('resp').replace('-', '_');
      const createdAt = Math.floor(Date.now() / 1000);
      const started = performance.now();
      const ac = watchDisconnect(reply);
      const events = runMcpResponse({ ctx, body, id, history, input, bindings, approvals, servers, limits, signal: ac.signal });
      const finishResponse = async (r: McpRunResult): Promise<Record<string, unknown>> => {
        const usage = { input_tokens: r.promptTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: r.completionTokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: r.promptTokens + r.completionTokens };
        const response = responseObject(body, id, createdAt, r.finish === 'length' ? 'incomplete' : 'completed', r.output, usage, r.finish, r.notices);
        if (body.store === false) return response;
        const outcome = await store.put(owner, id, { response, items: [...history, ...input] }).catch((e: unknown) => {
          req.log.warn({ err: String(e) }, 'storing the response failed');
          return { stored: false as const, reason: 'the store of responses failed' };
        });
        return outcome.stored ? response : { ...response, store: false };
      };
      return await answerUnlessGone(req, reply, ac, async () => {
          if (body.stream !== true) {
            let step = await events.next();
            while (step.done !== true) step = await events.next();
            const response = await finishResponse(step.value);
            ctx.done(req, { route: 'responses', stream: false, status: 200, error: null, promptTokens: step.value.promptTokens, completionTokens: step.value.completionTokens, ttftMs: null, durationMs: performance.now() - started });
            return response;
          }
          // As responses-route.ts: headers wait for the first event, so an early failure is a plain HTTP error.
          let step = await events.next();
          const sse = openNamedStream(reply, req);
          let seq = 0;
          const send = async (e: ResponseStreamEvent): Promise<void> => sse.send(e.type, { ...e, sequence_number: seq++ });
          const initial = responseObject(body, id, createdAt, 'in_progress', [], null, null, []);
          const output: OutputItem[] = [];
          try {
            await send({ type: 'response.created', response: initial });
            await send({ type: 'response.in_progress', response: initial });
            while (step.done !== true) {
              const e = step.value;
              await send(e);
              if (e.type === 'response.output_item.done') output[e['output_index'] as number] = e['item'] as OutputItem;
              if (!sse.open) throw new ChoiceCancelled();
              step = await events.next();
            }
            const response = await finishResponse(step.value);
            await send({ type: step.value.finish === 'length' ? 'response.incomplete' : 'response.completed', response });
            sse.end();
            ctx.done(req, { route: 'responses', stream: true, status: 200, error: null, promptTokens: step.value.promptTokens, completionTokens: step.value.completionTokens, ttftMs: null, durationMs: performance.now() - started });
          } catch (e) {
            await events.return(undefined as never);
            if (e instanceof ChoiceCancelled || !sse.open) throw new ChoiceCancelled();
            const err = ctx.streamError(req, e, 'responses', 0, 0, started).error;
            await send({ type: 'error', code: err.code ?? err.type, message: err.message, param: err.param });
            await send({ type: 'response.failed', response: { ...responseObject(body, id, createdAt, 'failed', output.filter((o) => o !== undefined), null, null, []), error: { code: err.code ?? err.type, message: err.message } } });
            sse.end();
          }
          return reply;
      });
    },
  };
}
