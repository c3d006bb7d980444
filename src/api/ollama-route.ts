import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { planChatOffLoop, type ChatPlan } from './chat-request.ts';
import { checkOutput, type ToolCallOut } from './chat-route.ts';
import { ChoiceCancelled, type ChoiceEvent, type ChoiceFinish } from './choice-runner.ts';
import { registerOllamaInfoRoutes } from './ollama-info.ts';
import { ollamaName, resolveOllamaModel, translateOllamaChat, translateOllamaGenerate, type OllamaChatBody, type OllamaGenerateBody } from './ollama-request.ts';
import { schemaRef } from './openapi.ts';
import { runPlanChoice } from './plan-choice.ts';
import { admit, answerUnlessGone, completionId, watchDisconnect, type ApiContext } from './route-support.ts';

// Ollama's API on the gateway's port (https://github.com/ollama/ollama/blob/main/docs/api.md), for
// the clients that speak only it (the `ollama` libraries, Home Assistant, Open WebUI's Ollama
// connection, editor plugins). /api/chat and /api/generate translate into a chat plan and run it
// exactly as /v1/chat/completions does; the answer is Ollama's: newline-delimited JSON objects
// (streamed by default), the last with done: true, done_reason and durations in nanoseconds.
// Errors on /api/* leave as Ollama's {"error": "..."} (app.ts asks isOllamaRoute); one in the
// middle of a stream is a last {"error": "..."} line, as Ollama sends it.

export function isOllamaRoute(url: string | undefined): boolean {
  return url !== undefined && url.startsWith('/api/');
}

const NDJSON_HEADERS = Object.freeze({ 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', connection: 'keep-alive' });

interface Collected {
  content: string;
  thinking: string;
  calls: ToolCallOut[];
  finish: ChoiceFinish;
  tokens: number;
  /** ns from the request to the first event (the prompt's evaluation, as Ollama counts it). */
  firstNs: bigint | null;
}

type Kind = 'chat' | 'generate';

/** Tool arguments as the object Ollama sends (a non-object stays visible under `arguments`). */
function argsObject(args: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(args === '' ? '{}' : args);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  return { arguments: args };
}

function ollamaCalls(calls: readonly ToolCallOut[], from = 0): object[] {
  return calls.slice(from).map((c, k) => ({ id: c.id, function: { index: from + k, name: c.function.name, arguments: argsObject(c.function.arguments) } }));
}

function stats(plan: ChatPlan, c: Collected, t0: bigint): object {
  const total = process.hrtime.bigint() - t0;
  const first = c.firstNs ?? total;
  return {
    total_duration: Number(total),
    // The model is loaded on the workers before a request is admitted: nothing loads per request.
    load_duration: 0,
    prompt_eval_count: plan.prompt.length,
    prompt_eval_duration: Number(first),
    eval_count: c.tokens,
    eval_duration: Number(total - first),
  };
}

function doneReason(finish: ChoiceFinish): string {
  return finish === 'length' ? 'length' : 'stop';
}

export function registerOllamaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const handle = (kind: Kind) => async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const t0 = process.hrtime.bigint();
    const started = performance.now();
    const raw = req.body as OllamaChatBody & OllamaGenerateBody;
    const name = ollamaName(ctx.model);
    // An empty request loads the model (Ollama answers done_reason "load"): here it always is.
    const empty = kind === 'chat' ? (raw.messages ?? []).length === 0 : (raw.prompt ?? '') === '';
    if (empty) {
      resolveOllamaModel(raw.model, ctx.model);
      const body = kind === 'chat' ? { message: { role: 'assistant', content: '' } } : { response: '' };
      return { model: name, created_at: new Date().toISOString(), ...body, done_reason: 'load', done: true };
    }
    const chat = kind === 'chat' ? translateOllamaChat(raw, ctx.model) : translateOllamaGenerate(raw, ctx.model);
    const plan = await planChatOffLoop(chat, ctx.model, ctx.limits);
    admit(ctx, 1);
    const id = completionId('ollama');
    const ac = watchDisconnect(reply);
    const events = runPlanChoice(ctx, plan, id, ac.signal);
    const c: Collected = { content: '', thinking: '', calls: [], finish: 'stop', tokens: 0, firstNs: null };
    const base = (): object => ({ model: name, created_at: new Date().toISOString() });
    const part = (content: string, thinking: string, callsFrom: number | null): object => kind === 'chat'
      ? { ...base(), message: { role: 'assistant', content, ...(thinking === '' ? {} : { thinking }), ...(callsFrom === null ? {} : { tool_calls: ollamaCalls(c.calls, callsFrom) }) }, done: false }
      : { ...base(), response: content, ...(thinking === '' ? {} : { thinking }), done: false };
    const final = (): object => {
      const s = stats(plan, c, t0);
      ctx.done(req, { route: 'chat', stream: raw.stream !== false, status: 200, error: null, promptTokens: plan.prompt.length, completionTokens: c.tokens, ttftMs: c.firstNs === null ? null : Number(c.firstNs) / 1e6, durationMs: performance.now() - started });
      return { ...base(), ...(kind === 'chat' ? { message: { role: 'assistant', content: '' } } : { response: '' }), done: true, done_reason: doneReason(c.finish), ...s };
    };
    /** Folds one event into c; returns the line to stream for it, if any. */
    const fold = (ev: ChoiceEvent): object | null => {
      c.firstNs ??= process.hrtime.bigint() - t0;
      switch (ev.type) {
        case 'content':
          c.content += ev.text;
          return ev.text === '' ? null : part(ev.text, '', null);
        case 'reasoning':
          c.thinking += ev.text;
          return ev.text === '' ? null : part('', ev.text, null);
        case 'tool_call_start':
          c.calls[ev.index] = { id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } };
          return null;
        case 'tool_call_args':
          c.calls[ev.index]!.function.arguments += ev.fragment;
          return null;
        case 'tool_call_end':
          // Ollama streams a call whole, once its arguments are complete.
          return kind === 'chat' ? part('', '', ev.index) : null;
        case 'finish':
          c.finish = ev.reason;
          c.tokens = ev.completionTokens;
          checkOutput(plan, c.content, c.calls, ev.reason);
          return null;
      }
    };
    return await answerUnlessGone(req, reply, ac, async () => {
        if (raw.stream === false) {
          for await (const ev of events) fold(ev);
          const end = final() as Record<string, unknown>;
          if (kind === 'chat') {
            end['message'] = { role: 'assistant', content: c.content, ...(c.thinking === '' ? {} : { thinking: c.thinking }), ...(c.calls.length === 0 ? {} : { tool_calls: ollamaCalls(c.calls) }) };
          } else {
            end['response'] = c.content;
            if (c.thinking !== '') end['thinking'] = c.thinking;
          }
          return end;
        }
        return await streamLines(req, reply, ctx, events, fold, final, started, plan.prompt.length, () => c.tokens);
    });
  };
  app.post('/api/chat', { schema: { body: schemaRef('OllamaChatRequest') } }, handle('chat'));
  app.post('/api/generate', { schema: { body: schemaRef('OllamaGenerateRequest') } }, handle('generate'));
  registerOllamaInfoRoutes(app, ctx);
}

async function streamLines(
  req: FastifyRequest,
  reply: FastifyReply,
  ctx: ApiContext,
  events: AsyncGenerator<ChoiceEvent>,
  fold: (ev: ChoiceEvent) => object | null,
  final: () => object,
  started: number,
  promptTokens: number,
  tokens: () => number,
): Promise<FastifyReply> {
  // Headers wait for the first event: an error before any token is still a plain HTTP error.
  const first = await events.next();
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { ...NDJSON_HEADERS, 'x-request-id': String(req.id) });
  res.socket?.setNoDelay(true);
  const write = async (o: object): Promise<void> => {
    if (res.writableEnded || res.destroyed) throw new ChoiceCancelled();
    if (!res.write(`${JSON.stringify(o)}\n`)) await new Promise((r) => res.once('drain', r));
  };
  try {
    let step = first;
    while (step.done !== true) {
      const line = fold(step.value);
      if (line !== null) await write(line);
      step = await events.next();
    }
    await write(final());
    res.end();
  } catch (e) {
    await events.return(undefined);
    if (e instanceof ChoiceCancelled || res.destroyed) throw new ChoiceCancelled();
    const body = ctx.streamError(req, e, 'chat', promptTokens, tokens(), started);
    if (!res.writableEnded) res.end(`${JSON.stringify({ error: body.error.message })}\n`);
  }
  return reply;
}

/** Ollama's error body for an HTTP error (app.ts's handler, on /api/* routes). */
export function ollamaErrorBody(message: string): { error: string } {
  return { error: message };
}
