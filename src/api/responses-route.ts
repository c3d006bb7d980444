import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HearthError, isHearthError } from '../errors/index.ts';
import { ownerOf } from './auth.ts';
import { planChatOffLoop, type ChatPlan } from './chat-request.ts';
import { checkOutput, type ToolCallOut } from './chat-route.ts';
import { ChoiceCancelled, type ChoiceEvent, type ChoiceFinish } from './choice-runner.ts';
import { openNamedStream } from './event-stream.ts';
import { schemaRef } from './openapi.ts';
import { runPlanChoice } from './plan-choice.ts';
import { checkMetadata } from './metadata-limits.ts';
import { isResponseId, type PutOutcome, type ResponseStore, type StoredResponse } from './response-store.ts';
import { ResponseOutputBuilder, type OutputItem, type ResponseStreamEvent } from './responses-events.ts';
import { listInputItems, type InputItemsQuery } from './responses-input-items.ts';
import { responsesParam, translateResponsesRequest } from './responses-request.ts';
import { droppedNotice, qualifiedName, type ResponsesToolPlan } from './responses-tools.ts';
import { registerMcpResponses, type McpOptions } from './responses-mcp-route.ts';
import type { CreateResponseBody, ResponseInputItem } from './responses-types.ts';
import { admit, answerUnlessGone, completionId, watchDisconnect, type ApiContext } from './route-support.ts';

// POST /v1/responses, GET and DELETE /v1/responses/{response_id}: OpenAI's Responses API over the
// chat machinery. The request becomes a chat plan (responses-request.ts), one choice runs, and
// responses-events.ts folds its events into output items (and typed stream events).
// Stored responses belong to the API key that stored them (ownerOf): every route reads and writes
// only its caller's own store, and another key's id is the same 404 as an id that never existed,
// as OpenAI answers across projects. Ids are checked at the route (isResponseId): nothing else
// reaches a store, whose keys become NATS subjects.

/** The 404 for an id this caller has no stored response under (or that is not an id at all). */
function notFound(id: string, param: string): HearthError {
  // The id is quoted back, so cut it short and keep only printable characters.
  return new HearthError('HEARTH_ERR_RESPONSE_NOT_FOUND', [id.slice(0, 128).replace(/[^\x20-\x7e]/g, '?')], { param });
}

/** A store failure as a 503 (logged), never a 500 that quotes the store's own error. */
async function storeCall<T>(req: FastifyRequest, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    req.log.warn({ err: String(e) }, `stored responses: ${what} failed`);
    throw new HearthError('HEARTH_ERR_RESPONSE_STORE', [`${what} failed`], { cause: e });
  }
}

/** The caller's stored response `id`, or the 404. */
async function findOwn(req: FastifyRequest, store: ResponseStore, id: string, param: string): Promise<StoredResponse> {
  if (!isResponseId(id)) throw notFound(id, param);
  const found = await storeCall(req, 'reading a response', () => store.get(ownerOf(req), id));
  if (found === null) throw notFound(id, param);
  return found;
}

export function registerResponsesRoutes(app: FastifyInstance, ctx: ApiContext, store: ResponseStore, mcpOptions?: McpOptions): void {
  // Hosted mcp tools (and conversations holding MCP items) run in responses-mcp-route.ts.
  const mcp = registerMcpResponses(app, ctx, store, mcpOptions);
  app.post('/v1/responses', { schema: { body: schemaRef('CreateResponseRequest') } }, async (req, reply) => {
    const body = req.body as CreateResponseBody;
    checkMetadata(body.metadata);
    const prevId = body.previous_response_id ?? null;
    let history: ResponseInputItem[] = [];
    if (prevId !== null) {
      const prev = await findOwn(req, store, prevId, 'previous_response_id');
      history = [...(prev.items as ResponseInputItem[]), ...(prev.response['output'] as ResponseInputItem[])];
    }
    if (mcp.applies(body, history)) return mcp.respond(req, reply, body, history);
    const { chat, items, tools } = translateResponsesRequest(body, history, ctx.limits.hostedTools ?? 'drop');
    const notice = droppedNotice(tools.dropped);
    if (notice !== null) {
      // Said where an operator and a client each look: a warn line (no request contents) and the
      // response (hearth_notices, and a header that is there before a stream's first event).
      ctx.warn(req, { dropped: tools.dropped }, 'responses: hosted tools left out (server.hostedTools = drop)');
      reply.raw.setHeader(DROPPED_TOOLS_HEADER, [...new Set(tools.dropped.map((d) => d.type))].join(','));
    }
    let plan: ChatPlan;
    try {
      plan = await planChatOffLoop(chat, ctx.model, ctx.limits);
    } catch (e) {
      throw respell(e);
    }
    admit(ctx, 1);
    const id = completionId('resp').replace('-', '_');
    const ac = watchDisconnect(reply);
    const started = performance.now();
    const events = runPlanChoice(ctx, plan, id, ac.signal);
    const run: Run = { ctx, plan, body, id, items, tools, notices: notice === null ? [] : [notice], store, owner: ownerOf(req), started, createdAt: Math.floor(Date.now() / 1000) };
    return await answerUnlessGone(req, reply, ac, async () => {
        if (body.stream === true) return await streamResponse(req, reply, run, events);
        return await answerResponse(req, reply, run, events);
    });
  });

  app.get('/v1/responses/:response_id', async (req) => {
    const { response_id: id } = req.params as { response_id: string };
    return (await findOwn(req, store, id, 'response_id')).response;
  });

  app.get('/v1/responses/:response_id/input_items', async (req) => {
    const { response_id: id } = req.params as { response_id: string };
    const found = await findOwn(req, store, id, 'response_id');
    return listInputItems(id, found.items, req.query as InputItemsQuery);
  });

  app.delete('/v1/responses/:response_id', async (req) => {
    const { response_id: id } = req.params as { response_id: string };
    if (!isResponseId(id)) throw notFound(id, 'response_id');
    if (!(await storeCall(req, 'deleting a response', () => store.delete(ownerOf(req), id)))) throw notFound(id, 'response_id');
    return { id, object: 'response', deleted: true };
  });
}

interface Run {
  readonly ctx: ApiContext;
  readonly plan: ChatPlan;
  readonly body: CreateResponseBody;
  readonly id: string;
  readonly items: readonly ResponseInputItem[];
  /** The tools as offered (namespaced names, hosted ones left out). */
  readonly tools: ResponsesToolPlan;
  /** What the response says about the request beyond OpenAI's fields (hosted tools left out). */
  readonly notices: readonly string[];
  readonly store: ResponseStore;
  /** Whose store the response goes to (ownerOf the request). */
  readonly owner: string;
  readonly started: number;
  readonly createdAt: number;
}

/** Chat's error params, spelled as the Responses API names its fields. */
function respell(e: unknown): unknown {
  // HearthError's param is readonly for callers; this is the one place a translated request
  // renames it (the message itself names the field as the client sent it, or neutrally).
  if (isHearthError(e)) (e as { param: string | null }).param = responsesParam(e.param);
  return e;
}

/** The response object; `output`, `status` and `usage` change as it runs. */
function responseObject(run: Run, status: string, output: readonly OutputItem[], usage: object | null, finish: ChoiceFinish | null): Record<string, unknown> {
  const b = run.body;
  return {
    id: run.id,
    object: 'response',
    created_at: run.createdAt,
    status,
    error: null,
    incomplete_details: finish === 'length' ? { reason: 'max_output_tokens' } : null,
    instructions: b.instructions ?? null,
    // The limit applied (asked for, or the operator's), not only what was sent (issue 21).
    max_output_tokens: run.plan.maxTokensLimit,
    model: run.ctx.model.id,
    output,
    parallel_tool_calls: b.parallel_tool_calls ?? true,
    previous_response_id: b.previous_response_id ?? null,
    // The effort as asked (none/minimal turn a template's thinking off; the others leave it on);
    // no summaries are written (thinking comes back whole, as reasoning_text).
    reasoning: { effort: b.reasoning?.effort ?? null, summary: null },
    store: b.store !== false,
    temperature: b.temperature ?? 1,
    text: { format: b.text?.format ?? { type: 'text' } },
    tool_choice: b.tool_choice ?? 'auto',
    tools: run.tools.kept,
    top_p: b.top_p ?? 1,
    truncation: 'disabled',
    usage,
    user: b.user ?? null,
    metadata: b.metadata ?? {},
    ...(run.notices.length > 0 ? { hearth_notices: run.notices } : {}),
  };
}

interface Outcome {
  readonly response: Record<string, unknown>;
  readonly completionTokens: number;
  /** Why a response asked to be stored was not (null: stored, or not asked). */
  readonly notStored: string | null;
}

/** The header that names the hosted tool types a response left out. */
export const DROPPED_TOOLS_HEADER = 'x-hearth-dropped-tools';

/** The header that says why a response was not stored (non-streamed answers). */
export const NOT_STORED_HEADER = 'x-hearth-not-stored';

/** Checks constrained output, builds the final object and stores it (store: true, the default). */
async function complete(req: FastifyRequest, run: Run, builder: ResponseOutputBuilder, finish: ChoiceFinish, completionTokens: number): Promise<Outcome> {
  const output = builder.output;
  const text = output.filter((o) => o.type === 'message').map((o) => o.content.map((c) => c.text).join('')).join('');
  // Checked under the names the model was offered (a namespaced call by its qualified name).
  const calls: ToolCallOut[] = output.flatMap((o) => (o.type === 'function_call' ? [{ id: o.call_id, type: 'function' as const, function: { name: o.namespace === undefined ? o.name : qualifiedName(o.namespace, o.name), arguments: o.arguments } }] : []));
  try {
    checkOutput(run.plan, text, calls, finish);
  } catch (e) {
    throw respell(e);
  }
  const reasoning = output.filter((o) => o.type === 'reasoning').map((o) => o.content.map((c) => c.text).join('')).join('');
  const reasoningTokens = reasoning === '' ? 0 : Math.min(completionTokens, run.ctx.model.tokenizer.encode(reasoning).length);
  const inputTokens = run.plan.prompt.length;
  const usage = {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: completionTokens,
    output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: inputTokens + completionTokens,
  };
  const response = responseObject(run, finish === 'length' ? 'incomplete' : 'completed', output, usage, finish);
  if (run.body.store === false) return { response, completionTokens, notStored: null };
  const outcome: PutOutcome = await run.store.put(run.owner, run.id, { response, items: run.items }).catch((e: unknown) => {
    req.log.warn({ err: String(e) }, 'storing the response failed');
    return { stored: false, reason: 'the store of responses failed' };
  });
  if (outcome.stored) return { response, completionTokens, notStored: null };
  // Said to the client as vLLM does when it cannot store (`store: false` in the object it returns),
  // plus the reason in a header on a plain answer: a client that continues with
  // previous_response_id learns now, not from a 404 later.
  req.log.warn({ id: run.id, reason: outcome.reason }, 'response not stored; previous_response_id cannot continue it');
  return { response: { ...response, store: false }, completionTokens, notStored: outcome.reason };
}

async function answerResponse(req: FastifyRequest, reply: FastifyReply, run: Run, events: AsyncGenerator<ChoiceEvent>): Promise<unknown> {
  const builder = new ResponseOutputBuilder(run.tools.namespaced);
  let ttft: number | null = null;
  let finish: ChoiceFinish = 'stop';
  let tokens = 0;
  for await (const ev of events) {
    ttft ??= performance.now() - run.started;
    builder.push(ev);
    if (ev.type === 'finish') {
      finish = ev.reason;
      tokens = ev.completionTokens;
    }
  }
  builder.finish(finish === 'length');
  const out = await complete(req, run, builder, finish, tokens);
  if (out.notStored !== null) void reply.header(NOT_STORED_HEADER, out.notStored);
  run.ctx.done(req, { route: 'responses', stream: false, status: 200, error: null, promptTokens: run.plan.prompt.length, completionTokens: tokens, ttftMs: ttft, durationMs: performance.now() - run.started });
  return out.response;
}

async function streamResponse(req: FastifyRequest, reply: FastifyReply, run: Run, events: AsyncGenerator<ChoiceEvent>): Promise<FastifyReply> {
  // Hold the headers until the first event, as chat does: an error before any token is still a
  // plain HTTP error with its status.
  const first = await events.next();
  const sse = openNamedStream(reply, req);
  let seq = 0;
  const send = async (e: ResponseStreamEvent): Promise<void> => sse.send(e.type, { ...e, sequence_number: seq++ });
  const builder = new ResponseOutputBuilder(run.tools.namespaced);
  const ttft = performance.now() - run.started;
  let tokens = 0;
  try {
    const initial = responseObject(run, 'in_progress', [], null, null);
    await send({ type: 'response.created', response: initial });
    await send({ type: 'response.in_progress', response: initial });
    let finish: ChoiceFinish = 'stop';
    let step = first;
    while (step.done !== true) {
      const ev = step.value;
      for (const e of builder.push(ev)) await send(e);
      if (ev.type === 'finish') {
        finish = ev.reason;
        tokens = ev.completionTokens;
      }
      if (!sse.open) throw new ChoiceCancelled();
      step = await events.next();
    }
    for (const e of builder.finish(finish === 'length')) await send(e);
    const out = await complete(req, run, builder, finish, tokens);
    await send({ type: finish === 'length' ? 'response.incomplete' : 'response.completed', response: out.response });
    sse.end();
    run.ctx.done(req, { route: 'responses', stream: true, status: 200, error: null, promptTokens: run.plan.prompt.length, completionTokens: tokens, ttftMs: ttft, durationMs: performance.now() - run.started });
  } catch (e) {
    await events.return(undefined);
    if (e instanceof ChoiceCancelled || !sse.open) throw new ChoiceCancelled();
    const body = run.ctx.streamError(req, respell(e), 'responses', run.plan.prompt.length, tokens, run.started).error;
    // The Responses API's stream error: an `error` event, then the response as failed.
    await send({ type: 'error', code: body.code ?? body.type, message: body.message, param: body.param });
    await send({ type: 'response.failed', response: { ...responseObject(run, 'failed', builder.output, null, null), error: { code: body.code ?? body.type, message: body.message } } });
    sse.end();
  }
  return reply;
}

