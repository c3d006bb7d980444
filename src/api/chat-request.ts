import type { ValidateFunction } from 'ajv';
import type { ConstraintSpec } from '../chat/constraint/index.ts';
import type { RenderOptions } from '../chat/template.ts';
import type { ToolSyntax } from '../chat/tool-calls/syntax.ts';
import { toolSyntaxFor } from '../chat/tool-calls/syntax.ts';
import { HearthError } from '../errors/index.ts';
import type { SamplingParams } from '../sampling/types.ts';
import type { ChatMessage } from '../tokenizer/types.ts';
import { appliedLimit, completionBudget, contextError, precheckLength, samplingPerChoice, stopStrings } from './generation-fields.ts';
import { MAX_ARGUMENT_DEPTH, jsonValueTooDeep, toChatMessages } from './messages.ts';
import type { ChatRequestBody } from './openai-types.ts';
import { reasoningMode } from './reasoning-splitter.ts';
import { planTools, type ToolPlan } from './tools.ts';
import type { ApiLimits, ServedModel } from './types.ts';
import { compileUserSchema } from './user-schemas.ts';
import { encodeOffLoop, renderOffLoop } from '../chat/encode-off-loop.ts';

// A validated chat request → everything needed to generate and to shape the answer: the rendered,
// tokenized prompt, per-choice sampling, stops, tools and the output constraint. Pure: no sockets,
// no generator; unit-tested with the real tokenizer and template.

export type FormatPlan =
  | { readonly kind: 'json_object' }
  | { readonly kind: 'json_schema'; readonly name: string; readonly schema: Record<string, unknown>; readonly validate: ValidateFunction };

export interface ChatPlan {
  readonly n: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly messages: readonly ChatMessage[];
  readonly promptText: string;
  readonly prompt: Int32Array;
  readonly maxTokens: number;
  /** The limit asked for or set by the operator (what Responses echoes as max_output_tokens);
   *  null when only the context's end bounds the answer. */
  readonly maxTokensLimit: number | null;
  /** One per choice (seed + i). */
  readonly sampling: readonly SamplingParams[];
  readonly stops: readonly string[];
  readonly stopTokens: readonly number[];
  readonly logprobs: boolean;
  readonly tools: ToolPlan | null;
  /** The syntax to parse calls in; null when calls are off (no tools, or tool_choice none). */
  readonly toolSyntax: ToolSyntax | null;
  readonly format: FormatPlan | null;
  /** For chat/constraint's createConstraint (one fresh constraint per choice: they hold state). */
  readonly constraint: ConstraintSpec | null;
  /** Think blocks go to reasoning_content (null: the template has none, or output is constrained). */
  readonly reasoning: { readonly startInside: boolean } | null;
}

/** Tokens that end an assistant turn in the common templates, when the tokenizer has them. */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<|end|>', '<|endoftext|>', '</s>'];

export function chatStopTokens(model: ServedModel): number[] {
  const ids = new Set(model.tokenizer.eosTokenIds);
  for (const piece of END_OF_TURN) {
    const id = model.tokenizer.idOf(piece);
    if (id !== undefined && model.tokenizer.specialIds.has(id)) ids.add(id);
  }
  return [...ids];
}

export function checkModel(requested: string, model: ServedModel): void {
  if (requested !== model.id) throw new HearthError('HEARTH_ERR_MODEL_NOT_FOUND', [requested.slice(0, 256), model.id], { param: 'model' });
}

/**
 * Most messages one request may hold. Rendering costs ~50 µs a message on the event loop (100k
 * one-character messages stalled the gateway 8-9 s, issue 19); long agent sessions hold hundreds
 * to a few thousand before the client compacts them.
 */
export const MAX_MESSAGES = 4096;

export function planChat(body: ChatRequestBody, model: ServedModel, limits: ApiLimits): ChatPlan {
  const r = renderChat(prepareChat(body, model), model);
  return finishChat(body, model, limits, r, Int32Array.from(model.tokenizer.encode(r.promptText, { addSpecialTokens: false })));
}

/**
 * planChat for the routes: the same plan, with a long conversation rendered and a big prompt
 * tokenized off the event loop (within a deadline: encode-off-loop.ts), so one request cannot
 * stall /health and heartbeats.
 */
export async function planChatOffLoop(body: ChatRequestBody, model: ServedModel, limits: ApiLimits): Promise<ChatPlan> {
  const p = prepareChat(body, model);
  const off = await renderOffLoop(model.template, model.tokenizer, p.messages, p.opts, p.chars, { param: 'messages' });
  if (off !== null) {
    precheckLength(model.tokenizer, model.contextLength, off.text.length, 'messages');
    return finishChat(body, model, limits, { ...p, promptText: off.text }, off.ids);
  }
  const r = renderChat(p, model);
  return finishChat(body, model, limits, r, await encodeOffLoop(model.tokenizer, r.promptText, { addSpecialTokens: false, param: 'messages' }));
}

interface PreparedChat {
  readonly n: number;
  readonly logprobs: boolean;
  readonly topLogprobs: number;
  readonly tools: ToolPlan | null;
  readonly format: FormatPlan | null;
  readonly messages: readonly ChatMessage[];
  readonly opts: RenderOptions;
  /** Characters of content (the length precheck's and the off-loop choice's measure). */
  readonly chars: number;
}

interface RenderedChat extends PreparedChat {
  readonly promptText: string;
}

/** Everything up to rendering: validation, tools, format, messages. */
function prepareChat(body: ChatRequestBody, model: ServedModel): PreparedChat {
  checkModel(body.model, model);
  if (body.messages.length > MAX_MESSAGES) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Too many messages: ${body.messages.length} (limit ${MAX_MESSAGES} messages per request); compact the conversation.`], { param: 'messages' });
  }
  const tok = model.tokenizer;
  const n = body.n ?? 1;
  if (body.top_logprobs !== undefined && body.top_logprobs !== null && body.logprobs !== true) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used."], { param: 'top_logprobs' });
  }
  const logprobs = body.logprobs === true;
  const topLogprobs = logprobs ? (body.top_logprobs ?? 0) : -1;

  const tools = planTools(body.tools, body.tool_choice, body.parallel_tool_calls);
  const format = planFormat(body.response_format);
  const messages = toChatMessages(body.messages);

  let chars = 0;
  for (const m of messages) chars += (m.content?.length ?? 0) + (m.tool_calls?.reduce((s, c) => s + c.function.arguments.length, 0) ?? 0);
  precheckLength(tok, model.contextLength, chars, 'messages');
  // Template variables are rendered by recursive code: bounded like tool arguments.
  if (jsonValueTooDeep(body.chat_template_kwargs)) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid 'chat_template_kwargs': it nests deeper than ${MAX_ARGUMENT_DEPTH} levels (limit ${MAX_ARGUMENT_DEPTH}).`], { param: 'chat_template_kwargs' });
  }
  const opts: RenderOptions = {
    ...(tools === null || tools.defs.length === 0 ? {} : { tools: tools.defs }),
    addGenerationPrompt: true,
    ...(body.chat_template_kwargs === undefined || body.chat_template_kwargs === null ? {} : { vars: body.chat_template_kwargs }),
  };
  return { n, logprobs, topLogprobs, tools, format, messages, opts, chars };
}

/** The prompt text, rendered here. */
function renderChat(p: PreparedChat, model: ServedModel): RenderedChat {
  let promptText: string;
  try {
    promptText = model.template.render(p.messages, p.opts);
  } catch (e) {
    if (e instanceof HearthError) throw e;
    // Templates raise on conversations they do not accept ("roles must alternate"...): the client's
    // request is at fault, and the template's own words say why.
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`The model's chat template rejected the messages: ${(e as Error).message}`.slice(0, 500)], { param: 'messages', cause: e });
  }
  precheckLength(model.tokenizer, model.contextLength, promptText.length, 'messages');
  return { ...p, promptText };
}

/** The plan from the rendered prompt and its tokens. */
function finishChat(body: ChatRequestBody, model: ServedModel, limits: ApiLimits, r: RenderedChat, prompt: Int32Array): ChatPlan {
  const { n, logprobs, topLogprobs, tools, format, messages, promptText } = r;
  const tok = model.tokenizer;
  if (prompt.length >= model.contextLength) throw contextError(model.contextLength, prompt.length, 'messages');
  const requested = body.max_completion_tokens ?? body.max_tokens;
  const maxTokens = completionBudget(requested, prompt.length, model.contextLength, limits.maxTokensDefault, body.max_completion_tokens === undefined || body.max_completion_tokens === null ? 'max_tokens' : 'max_completion_tokens', limits.maxTokens);

  const callsOn = tools !== null && tools.mode !== 'none';
  const toolSyntax = callsOn ? toolSyntaxFor(model.family, model.templateSource) : null;
  const constraint = constraintSpec(tools, toolSyntax, format, maxTokens);
  const think = reasoningMode(model.templateSource, promptText);
  // A constrained answer starts at its first token (JSON, a forced call): no room for thinking.
  // auto-strict only constrains once a call starts, so the model may think first.
  const reasoning = think.enabled && (constraint === null || (constraint.kind === 'tool_call' && constraint.mode === 'auto-strict')) ? { startInside: think.startInside } : null;
  return {
    n,
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
    messages,
    promptText,
    prompt,
    maxTokens,
    maxTokensLimit: appliedLimit(requested, limits.maxTokensDefault, limits.maxTokens),
    sampling: samplingPerChoice(body, n, topLogprobs, tok.vocabSize),
    stops: stopStrings(body.stop),
    stopTokens: chatStopTokens(model),
    logprobs,
    tools,
    toolSyntax,
    format,
    constraint,
    reasoning,
  };
}

function planFormat(rf: ChatRequestBody['response_format']): FormatPlan | null {
  if (rf === undefined || rf.type === 'text') return null;
  if (rf.type !== 'json_schema') return { kind: 'json_object' };
  const js = rf.json_schema;
  // OpenAI requires a schema in practice; without one any JSON object is the honest reading.
  const schema = js.schema ?? { type: 'object' };
  let validate: ValidateFunction;
  try {
    validate = compileUserSchema(schema);
  } catch (e) {
    throw new HearthError('HEARTH_ERR_RESPONSE_SCHEMA', [js.name, (e as Error).message.slice(0, 300)], { param: 'response_format.json_schema.schema', cause: e });
  }
  return { kind: 'json_schema', name: js.name, schema, validate };
}

/**
 * Tool constraints win over response_format: with tool_choice required/named the answer is a call,
 * not content. With tools on 'auto' (no strict tool) and a response_format, content is constrained
 * and calls cannot start: the format was asked for explicitly.
 */
function constraintSpec(tools: ToolPlan | null, syntax: ToolSyntax | null, format: FormatPlan | null, maxTokens: number): ConstraintSpec | null {
  if (tools !== null && syntax !== null && (tools.mode === 'required' || tools.mode === 'named' || tools.mode === 'auto-strict')) {
    return { kind: 'tool_call', syntax, tools: tools.defs, mode: tools.mode, ...(tools.name === undefined ? {} : { name: tools.name }), parallel: tools.parallel, maxTokens };
  }
  if (format?.kind === 'json_object') return { kind: 'json_object', maxTokens };
  if (format?.kind === 'json_schema') return { kind: 'json_schema', schema: format.schema, maxTokens };
  return null;
}
