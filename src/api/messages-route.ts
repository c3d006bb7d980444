import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HearthError } from '../errors/index.ts';
import type { RenderOptions } from '../chat/template.ts';
import { encodeOffLoop, renderOffLoop } from '../chat/encode-off-loop.ts';
import type { TokenConstraint } from '../scheduler/types.ts';
import { anthropicErrorBody, thinkingPlan, translateMessagesRequest } from './anthropic-request.ts';
import type { CreateMessageBody } from './anthropic-types.ts';
import { planChatOffLoop, type ChatPlan } from './chat-request.ts';
import { toChatMessages } from './messages.ts';
import type { ChatRequestBody } from './openai-types.ts';
import { thinkingBudgetConstraint } from './thinking-budget.ts';
import { planTools } from './tools.ts';
import type { ServedModel } from './types.ts';
import { checkOutput, type ToolCallOut } from './chat-route.ts';
import { ChoiceCancelled, type ChoiceEvent, type ChoiceFinish } from './choice-runner.ts';
import { openNamedStream } from './event-stream.ts';
import { toHttpError } from './http-errors.ts';
import { schemaRef } from './openapi.ts';
import { runPlanChoice } from './plan-choice.ts';
import { admit, answerUnlessGone, completionId, watchDisconnect, type ApiContext } from './route-support.ts';

// POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API (what Claude Code and
// the Anthropic SDKs speak) over the chat machinery. Errors on these routes leave in Anthropic's
// shape (app.ts asks isAnthropicRoute). Stream events follow
// https://docs.anthropic.com/en/docs/build-with-claude/streaming: message_start,
// content_block_start/delta/stop per block, message_delta (stop_reason, usage), message_stop.

export const ANTHROPIC_ROUTES: readonly string[] = ['/v1/messages', '/v1/messages/count_tokens'];

export function isAnthropicRoute(url: string | undefined): boolean {
  return url !== undefined && ANTHROPIC_ROUTES.includes(url);
}

type Block =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown; args: string };

type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

function checkVersion(req: FastifyRequest): void {
  const v = req.headers['anthropic-version'];
  // Optional here (curl users forget it); when sent it must look like Anthropic's dated versions.
  if (v !== undefined && (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v))) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`anthropic-version: '${String(v).slice(0, 32)}' is not a valid version (e.g. 2023-06-01).`], { param: 'anthropic-version' });
  }
}

const inlineSystem = new WeakMap<ServedModel, boolean>();
const PROBE = 'hearth-mid-conversation-system-probe';

/**
 * Whether the model's template renders a `system` message after the first one where it stands
 * (Qwen2/3 and Llama 3 templates do; Mistral's raises, some drop it). Probed once per model by
 * rendering one; when it does not, such messages are merged into the leading system prompt
 * instead (anthropic-request.ts, AnthropicMessageOptions).
 */
export function templateRendersMidSystem(model: ServedModel): boolean {
  let ok = inlineSystem.get(model);
  if (ok === undefined) {
    try {
      ok = model.template.render([{ role: 'user', content: 'hi' }, { role: 'system', content: PROBE }], { addGenerationPrompt: true }).includes(PROBE);
    } catch {
      ok = false;
    }
    inlineSystem.set(model, ok);
  }
  return ok;
}

function translate(ctx: ApiContext, body: CreateMessageBody): ChatRequestBody {
  return translateMessagesRequest(body, { systemInline: templateRendersMidSystem(ctx.model) });
}

function plan(ctx: ApiContext, body: CreateMessageBody): Promise<ChatPlan> {
  return planChatOffLoop(translate(ctx, body), ctx.model, ctx.limits);
}

/**
 * Tokens of the prompt a Messages body renders to (system, tools, messages, the generation
 * prompt), with no context-length check: Claude Code counts a conversation precisely to learn
 * that it no longer fits. Long ones render and tokenize off the event loop, as planChat does.
 */
async function countTokens(ctx: ApiContext, body: CreateMessageBody): Promise<number> {
  const chat = translate(ctx, body);
  const messages = toChatMessages(chat.messages);
  // As prepareChat offers them: tool_choice none renders no tools, so it counts none.
  const tools = planTools(chat.tools, chat.tool_choice, chat.parallel_tool_calls);
  const opts: RenderOptions = { ...(tools === null || tools.defs.length === 0 ? {} : { tools: tools.defs }), addGenerationPrompt: true, ...(chat.chat_template_kwargs == null ? {} : { vars: chat.chat_template_kwargs }) };
  let chars = 0;
  for (const m of messages) chars += (m.content?.length ?? 0) + (m.tool_calls?.reduce((n, c) => n + c.function.arguments.length, 0) ?? 0);
  const { template, tokenizer } = ctx.model;
  const off = await renderOffLoop(template, tokenizer, messages, opts, chars, { param: 'messages' });
  if (off !== null) return off.ids.length;
  let text: string;
  try {
    text = template.render(messages, opts);
  } catch (e) {
    if (e instanceof HearthError) throw e;
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`The model's chat template rejected the messages: ${(e as Error).message}`.slice(0, 500)], { param: 'messages', cause: e });
  }
  return (await encodeOffLoop(tokenizer, text, { addSpecialTokens: false, param: 'messages' })).length;
}

/** The thinking budget as a decoding rule, when the request has one and the template thinks. */
function budgetRule(ctx: ApiContext, p: ChatPlan, budget: number | null): ((c: TokenConstraint | undefined) => TokenConstraint | undefined) | undefined {
  if (budget === null || p.reasoning === null) return undefined;
  const tok = ctx.model.tokenizer;
  const open = tok.encode('<think>', { addSpecialTokens: false });
  const close = tok.encode('</think>', { addSpecialTokens: false });
  return (inner) => thinkingBudgetConstraint({ budget, open, close, startInside: p.reasoning!.startInside }, inner);
}

export function registerMessagesRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/v1/messages/count_tokens', { schema: { body: schemaRef('CountMessageTokensRequest') } }, async (req) => {
    checkVersion(req);
    return { input_tokens: await countTokens(ctx, req.body as CreateMessageBody) };
  });

  app.post('/v1/messages', { schema: { body: schemaRef('CreateMessageRequest') } }, async (req, reply) => {
    checkVersion(req);
    const body = req.body as CreateMessageBody;
    const p = await plan(ctx, body);
    const thinking = thinkingPlan(body.thinking, body.max_tokens);
    admit(ctx, 1);
    const id = completionId('msg').replace('-', '_');
    const ac = watchDisconnect(reply);
    const started = performance.now();
    const events = runPlanChoice(ctx, p, id, ac.signal, budgetRule(ctx, p, thinking.budget));
    const shown = thinking.omitText ? omitThinking(events) : events;
    return await answerUnlessGone(req, reply, ac, async () => {
        if (body.stream === true) return await streamMessage(req, reply, ctx, p, id, shown, started);
        return await answerMessage(req, ctx, p, id, shown, started);
    });
  });
}

/** `thinking.display: "omitted"`: thinking blocks still open and close, without their text. */
export async function* omitThinking(events: AsyncGenerator<ChoiceEvent>): AsyncGenerator<ChoiceEvent> {
  let inThinking = false;
  try {
    for await (const ev of events) {
      if (ev.type === 'reasoning') {
        if (!inThinking) yield { ...ev, text: '' };
        inThinking = true;
        continue;
      }
      inThinking = false;
      yield ev;
    }
  } finally {
    await events.return(undefined);
  }
}

/** Tool arguments as the `input` object; arguments that are not a JSON object stay visible. */
function toolInput(args: string): unknown {
  try {
    const v: unknown = JSON.parse(args === '' ? '{}' : args);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {
    // fall through
  }
  return { arguments: args };
}

function stopReason(finish: ChoiceFinish, stopString: string | undefined): StopReason {
  if (finish === 'tool_calls') return 'tool_use';
  if (finish === 'length') return 'max_tokens';
  return stopString === undefined ? 'end_turn' : 'stop_sequence';
}

function check(p: ChatPlan, blocks: readonly Block[], finish: ChoiceFinish): void {
  const text = blocks.map((b) => (b.type === 'text' ? b.text : '')).join('');
  const calls: ToolCallOut[] = blocks.flatMap((b) => (b.type === 'tool_use' ? [{ id: b.id, type: 'function' as const, function: { name: b.name, arguments: b.args } }] : []));
  checkOutput(p, text, calls, finish);
}

function publicBlock(b: Block): object {
  if (b.type !== 'tool_use') return b;
  return { type: 'tool_use', id: b.id, name: b.name, input: toolInput(b.args) };
}

async function answerMessage(req: FastifyRequest, ctx: ApiContext, p: ChatPlan, id: string, events: AsyncGenerator<ChoiceEvent>, started: number): Promise<unknown> {
  const blocks: Block[] = [];
  const calls = new Map<number, Block & { type: 'tool_use' }>();
  let finish: ChoiceFinish = 'stop';
  let stopString: string | undefined;
  let tokens = 0;
  let ttft: number | null = null;
  const last = (): Block | undefined => blocks.at(-1);
  for await (const ev of events) {
    ttft ??= performance.now() - started;
    switch (ev.type) {
      case 'reasoning': {
        const b = last();
        if (b?.type === 'thinking') b.thinking += ev.text;
        else blocks.push({ type: 'thinking', thinking: ev.text, signature: '' });
        break;
      }
      case 'content': {
        const b = last();
        if (b?.type === 'text') b.text += ev.text;
        else blocks.push({ type: 'text', text: ev.text });
        break;
      }
      case 'tool_call_start': {
        const b: Block & { type: 'tool_use' } = { type: 'tool_use', id: ev.id, name: ev.name, input: {}, args: '' };
        blocks.push(b);
        calls.set(ev.index, b);
        break;
      }
      case 'tool_call_args':
        calls.get(ev.index)!.args += ev.fragment;
        break;
      case 'tool_call_end':
        break;
      case 'finish':
        finish = ev.reason;
        stopString = ev.stopString;
        tokens = ev.completionTokens;
        break;
    }
  }
  check(p, blocks, finish);
  ctx.done(req, { route: 'messages', stream: false, status: 200, error: null, promptTokens: p.prompt.length, completionTokens: tokens, ttftMs: ttft, durationMs: performance.now() - started });
  const reason = stopReason(finish, stopString);
  return {
    id,
    type: 'message',
    role: 'assistant',
    model: ctx.model.id,
    content: blocks.map(publicBlock),
    stop_reason: reason,
    stop_sequence: reason === 'stop_sequence' ? stopString! : null,
    usage: { input_tokens: p.prompt.length, output_tokens: tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  };
}

async function streamMessage(req: FastifyRequest, reply: FastifyReply, ctx: ApiContext, p: ChatPlan, id: string, events: AsyncGenerator<ChoiceEvent>, started: number): Promise<FastifyReply> {
  const first = await events.next();
  const sse = openNamedStream(reply, req);
  const ttft = performance.now() - started;
  const send = (name: string, payload: object): Promise<void> => sse.send(name, { type: name, ...payload });
  const blocks: Block[] = [];
  const calls = new Map<number, number>();
  let openIndex: number | null = null;
  let tokens = 0;
  const close = async (): Promise<void> => {
    if (openIndex === null) return;
    const b = blocks[openIndex]!;
    // Thinking blocks end with a signature (clients send them back verbatim); hearth does not sign.
    if (b.type === 'thinking') await send('content_block_delta', { index: openIndex, delta: { type: 'signature_delta', signature: '' } });
    await send('content_block_stop', { index: openIndex });
    openIndex = null;
  };
  const start = async (b: Block): Promise<number> => {
    await close();
    blocks.push(b);
    openIndex = blocks.length - 1;
    const shown = b.type === 'tool_use' ? { type: 'tool_use', id: b.id, name: b.name, input: {} } : b.type === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
    await send('content_block_start', { index: openIndex, content_block: shown });
    return openIndex;
  };
  try {
    await send('message_start', {
      message: { id, type: 'message', role: 'assistant', model: ctx.model.id, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: p.prompt.length, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } },
    });
    await send('ping', {});
    let finish: ChoiceFinish = 'stop';
    let stopString: string | undefined;
    let step = first;
    while (step.done !== true) {
      const ev = step.value;
      switch (ev.type) {
        case 'reasoning': {
          const at = openIndex !== null && blocks[openIndex]!.type === 'thinking' ? openIndex : await start({ type: 'thinking', thinking: '', signature: '' });
          (blocks[at] as Block & { type: 'thinking' }).thinking += ev.text;
          await send('content_block_delta', { index: at, delta: { type: 'thinking_delta', thinking: ev.text } });
          break;
        }
        case 'content': {
          const at = openIndex !== null && blocks[openIndex]!.type === 'text' ? openIndex : await start({ type: 'text', text: '' });
          (blocks[at] as Block & { type: 'text' }).text += ev.text;
          await send('content_block_delta', { index: at, delta: { type: 'text_delta', text: ev.text } });
          break;
        }
        case 'tool_call_start':
          calls.set(ev.index, await start({ type: 'tool_use', id: ev.id, name: ev.name, input: {}, args: '' }));
          break;
        case 'tool_call_args': {
          const at = calls.get(ev.index)!;
          (blocks[at] as Block & { type: 'tool_use' }).args += ev.fragment;
          await send('content_block_delta', { index: at, delta: { type: 'input_json_delta', partial_json: ev.fragment } });
          break;
        }
        case 'tool_call_end':
          break;
        case 'finish':
          finish = ev.reason;
          stopString = ev.stopString;
          tokens = ev.completionTokens;
          break;
      }
      if (!sse.open) throw new ChoiceCancelled();
      step = await events.next();
    }
    await close();
    check(p, blocks, finish);
    const reason = stopReason(finish, stopString);
    await send('message_delta', { delta: { stop_reason: reason, stop_sequence: reason === 'stop_sequence' ? stopString! : null }, usage: { output_tokens: tokens } });
    await send('message_stop', {});
    sse.end();
    ctx.done(req, { route: 'messages', stream: true, status: 200, error: null, promptTokens: p.prompt.length, completionTokens: tokens, ttftMs: ttft, durationMs: performance.now() - started });
  } catch (e) {
    await events.return(undefined);
    if (e instanceof ChoiceCancelled || !sse.open) throw new ChoiceCancelled();
    ctx.streamError(req, e, 'messages', p.prompt.length, tokens, started);
    const h = toHttpError(e);
    await sse.send('error', anthropicErrorBody(h.status, h.body.error.message, h.code));
    sse.end();
  }
  return reply;
}
