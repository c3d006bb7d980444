import { HearthError } from '../errors/index.ts';
import type { AnthropicBlock, AnthropicMessage, AnthropicTextBlock, AnthropicToolResultBlock, AnthropicToolUseBlock, CreateMessageBody } from './anthropic-types.ts';
import { jsonValueTooDeep, tooDeepError, wellFormed } from './messages.ts';
import type { ChatMessageBody, ChatRequestBody, ToolBody, ToolChoiceBody } from './openai-types.ts';

// An Anthropic Messages request → the chat request hearth plans: `system` becomes a system message,
// tool_use blocks become an assistant turn's tool_calls, tool_result blocks become tool messages
// (before the user's text of the same turn, where Anthropic puts them), input_schema becomes the
// function's parameters, tool_choice any/tool/none map to required/named/none. Pure.

const MEDIA_BLOCKS = new Set(['image', 'document', 'search_result', 'container_upload']);

function blockText(b: AnthropicTextBlock, at: string): string {
  if (typeof b.text !== 'string') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${at}.text: Field required`], { param: `${at}.text` });
  return wellFormed(b.text);
}

function unsupported(type: string, at: string): HearthError {
  const why = MEDIA_BLOCKS.has(type) ? 'this model reads text only' : 'hearth accepts text, tool_use, tool_result and thinking blocks';
  return new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${at}.type: block type '${type.slice(0, 64)}' is not supported (${why}).`], { param: `${at}.type` });
}

function resultText(b: AnthropicToolResultBlock, at: string): string {
  const c = b.content;
  let text = '';
  if (typeof c === 'string') text = wellFormed(c);
  else if (c !== undefined) {
    text = c.map((p, k) => {
      if (p.type !== 'text') throw unsupported(p.type, `${at}.content.${k}`);
      return wellFormed(p.text ?? '');
    }).join('\n');
  }
  return b.is_error === true ? `Error: ${text}` : text;
}

const ROLES = new Set(['user', 'assistant', 'system']);

/**
 * Claude Code's first system block, "x-anthropic-billing-header: cc_version=2.1.332.0b8; ...", is
 * accounting for Anthropic's servers, not an instruction, and its version suffix changes between
 * sessions: rendered, it would only cost tokens and move the prompt's shared prefix. Dropped.
 */
function isBillingHeader(b: AnthropicTextBlock): boolean {
  return typeof b.text === 'string' && b.text.startsWith('x-anthropic-billing-header:');
}

/** A `system` message's text: a string or text blocks (cache_control and the like ignored). */
function systemText(content: AnthropicMessage['content'], at: string): string {
  if (typeof content === 'string') return wellFormed(content);
  return content.map((b, k) => {
    if (b.type !== 'text') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${at}.content.${k}.type: system messages hold text blocks only (got '${b.type.slice(0, 64)}').`], { param: `${at}.content.${k}.type` });
    return blockText(b as AnthropicTextBlock, `${at}.content.${k}`);
  }).join('\n');
}

export interface AnthropicMessageOptions {
  /**
   * Where `system` messages inside `messages` go (Claude Code sends them mid-conversation): true
   * renders each as a system turn where it stands, which is what the model should read when its
   * template can say it (Qwen2/3, Llama 3 render a system turn anywhere); false merges them, in
   * order, into the leading system prompt, for templates that raise on or drop a system message
   * after the first (Mistral's, Gemma's). messages-route.ts asks the template which (a probe).
   */
  readonly systemInline: boolean;
}

export function anthropicMessages(body: Pick<CreateMessageBody, 'system' | 'messages'>, opts: AnthropicMessageOptions = { systemInline: true }): ChatMessageBody[] {
  const out: ChatMessageBody[] = [];
  const merged: string[] = [];
  if (body.system !== undefined) {
    const system = typeof body.system === 'string' ? wellFormed(body.system) : body.system.flatMap((b, k) => (isBillingHeader(b) ? [] : [blockText(b, `system.${k}`)])).join('\n');
    if (system !== '') merged.push(system);
  }
  body.messages.forEach((m, i) => {
    const at = `messages.${i}`;
    if (!ROLES.has(m.role)) {
      // Anthropic's own words: Claude Code recognises them and retries without the message.
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${at}.role: Unexpected role "${String(m.role).slice(0, 64)}". Allowed roles are "user", "assistant" and "system".`], { param: `${at}.role` });
    }
    if (m.role === 'system') {
      const text = systemText(m.content, at);
      if (text === '') return;
      if (opts.systemInline) out.push({ role: 'system', content: text });
      else merged.push(text);
      return;
    }
    const role = m.role as 'user' | 'assistant';
    if (typeof m.content === 'string') {
      out.push({ role, content: wellFormed(m.content) });
      return;
    }
    const texts: string[] = [];
    const calls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] = [];
    const results: ChatMessageBody[] = [];
    m.content.forEach((block: AnthropicBlock, k) => {
      const bat = `${at}.content.${k}`;
      switch (block.type) {
        case 'text':
          texts.push(blockText(block as AnthropicTextBlock, bat));
          break;
        case 'tool_use': {
          if (role !== 'assistant') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${bat}: tool_use blocks belong to assistant messages.`], { param: bat });
          const u = block as AnthropicToolUseBlock;
          // Checked before JSON.stringify, which recurses (and overflows on a deep enough input).
          if (jsonValueTooDeep(u.input)) throw tooDeepError(`${bat}.input`);
          calls.push({ id: u.id, type: 'function', function: { name: u.name, arguments: JSON.stringify(u.input ?? {}) } });
          break;
        }
        case 'tool_result': {
          if (role !== 'user') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${bat}: tool_result blocks belong to user messages.`], { param: bat });
          const r = block as AnthropicToolResultBlock;
          results.push({ role: 'tool', tool_call_id: r.tool_use_id, content: resultText(r, bat) });
          break;
        }
        case 'thinking':
        case 'redacted_thinking':
          // The template renders each turn afresh; earlier thinking is not shown to the model again.
          break;
        default:
          throw unsupported(block.type, bat);
      }
    });
    out.push(...results);
    const text = texts.join('\n');
    if (role === 'assistant') {
      if (text !== '' || calls.length > 0) out.push({ role: 'assistant', content: text === '' && calls.length > 0 ? null : text, ...(calls.length === 0 ? {} : { tool_calls: calls }) });
    } else if (text !== '' || results.length === 0) out.push({ role: 'user', content: text });
  });
  if (merged.length > 0) out.unshift({ role: 'system', content: merged.join('\n\n') });
  return out;
}

function anthropicTools(tools: CreateMessageBody['tools']): ToolBody[] {
  return (tools ?? []).map((t, i) => {
    if (t.type !== undefined && t.type !== 'custom') {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`tools.${i}.type: '${t.type.slice(0, 64)}' is a server tool this server does not run; only custom tools (name, description, input_schema) are supported.`], { param: `tools.${i}.type` });
    }
    return { type: 'function', function: { name: t.name, ...(t.description === undefined ? {} : { description: t.description }), parameters: t.input_schema ?? { type: 'object' } } };
  });
}

function anthropicToolChoice(c: CreateMessageBody['tool_choice']): ToolChoiceBody | undefined {
  switch (c?.type) {
    case undefined:
      return undefined;
    case 'auto':
      return 'auto';
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool':
      if (typeof c.name !== 'string') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['tool_choice.name: Field required'], { param: 'tool_choice.name' });
      return { type: 'function', function: { name: c.name } };
  }
}

/** What `thinking` asks of the model: its template's switch, a budget, whether the text is shown. */
export interface ThinkingPlan {
  /** The chat template's `enable_thinking` (Qwen3's switch; templates without one ignore it). */
  readonly enabled: boolean;
  /** Tokens the model may spend inside `<think>` before it is made to close the block (null: no limit). */
  readonly budget: number | null;
  /** `display: "omitted"`: thinking blocks come back without their text. */
  readonly omitText: boolean;
}

/** Anthropic's smallest budget (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking). */
export const MIN_THINKING_BUDGET = 1024;

/**
 * `thinking` → the model's own thinking switch. Absent means off, as on Anthropic's API (thinking
 * is opt-in there; a Qwen3 template would otherwise think by default). `adaptive` lets the model
 * decide, with no budget; `enabled` gives a budget enforced while decoding. Errors use Anthropic's
 * wording (its validator's), since clients match on it.
 */
export function thinkingPlan(thinking: CreateMessageBody['thinking'], maxTokens: number | undefined): ThinkingPlan {
  const omitText = thinking?.display === 'omitted';
  switch (thinking?.type) {
    case undefined:
    case 'disabled':
      return { enabled: false, budget: null, omitText };
    case 'adaptive':
      return { enabled: true, budget: null, omitText };
    case 'enabled': {
      const b = thinking.budget_tokens;
      if (b === undefined) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['thinking.enabled.budget_tokens: Field required'], { param: 'thinking.budget_tokens' });
      if (b < MIN_THINKING_BUDGET) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`thinking.enabled.budget_tokens: Input should be greater than or equal to ${MIN_THINKING_BUDGET}`], { param: 'thinking.budget_tokens' });
      if (maxTokens !== undefined && maxTokens <= b) {
        throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size'], { param: 'max_tokens' });
      }
      return { enabled: true, budget: b, omitText };
    }
    default:
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`thinking: Input tag '${String(thinking?.type).slice(0, 64)}' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'`], { param: 'thinking.type' });
  }
}

export function translateMessagesRequest(body: CreateMessageBody, opts: AnthropicMessageOptions = { systemInline: true }): ChatRequestBody {
  const tools = anthropicTools(body.tools);
  const choice = tools.length === 0 && body.tool_choice?.type === 'none' ? undefined : anthropicToolChoice(body.tool_choice);
  const thinking = thinkingPlan(body.thinking, body.max_tokens);
  return {
    model: body.model,
    messages: anthropicMessages(body, opts),
    ...(body.max_tokens === undefined ? {} : { max_completion_tokens: body.max_tokens }),
    ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
    ...(body.top_p === undefined ? {} : { top_p: body.top_p }),
    ...(body.top_k === undefined ? {} : { top_k: body.top_k }),
    ...(body.stop_sequences === undefined ? {} : { stop: body.stop_sequences }),
    ...(tools.length === 0 ? {} : { tools }),
    ...(choice === undefined ? {} : { tool_choice: choice }),
    ...(body.tool_choice?.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {}),
    chat_template_kwargs: { enable_thinking: thinking.enabled },
  };
}

/** Anthropic's error `type` for an HTTP status (https://docs.anthropic.com/en/api/errors). */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/**
 * The two length errors in Anthropic's words, which Claude Code parses: "prompt is too long: N
 * tokens > M maximum" starts its compaction, "input length and `max_tokens` exceed context limit:
 * P + T > C" makes it retry with a smaller max_tokens. Read back from the catalogue's messages
 * (error-catalogue wording is tested); anything else keeps its own message.
 */
function anthropicWording(code: string | undefined, message: string): string {
  if (code === 'HEARTH_ERR_CONTEXT_LENGTH') {
    const m = /maximum context length is (\d+) tokens\. However, your messages resulted in (\d+) tokens/.exec(message);
    if (m !== null) return `prompt is too long: ${m[2]} tokens > ${m[1]} maximum`;
  }
  if (code === 'HEARTH_ERR_MAX_TOKENS_CONTEXT') {
    const m = /maximum context length is (\d+) tokens\. However, you requested \d+ tokens \((\d+) in the messages, (\d+) in the completion\)/.exec(message);
    if (m !== null) return `input length and \`max_tokens\` exceed context limit: ${m[2]} + ${m[3]} > ${m[1]}, decrease input length or \`max_tokens\` and try again`;
  }
  return message;
}

/** `{"type":"error","error":{"type","message"}}`, what the Anthropic SDKs parse. */
export function anthropicErrorBody(status: number, message: string, code?: string): { type: 'error'; error: { type: string; message: string } } {
  return { type: 'error', error: { type: anthropicErrorType(status), message: anthropicWording(code, message) } };
}
