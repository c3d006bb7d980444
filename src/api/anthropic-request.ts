import { HearthError } from '../errors/index.ts';
import type { AnthropicBlock, AnthropicTextBlock, AnthropicToolResultBlock, AnthropicToolUseBlock, CreateMessageBody } from './anthropic-types.ts';
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

export function anthropicMessages(body: Pick<CreateMessageBody, 'system' | 'messages'>): ChatMessageBody[] {
  const out: ChatMessageBody[] = [];
  if (body.system !== undefined) {
    const system = typeof body.system === 'string' ? wellFormed(body.system) : body.system.map((b, k) => blockText(b, `system.${k}`)).join('\n');
    if (system !== '') out.push({ role: 'system', content: system });
  }
  body.messages.forEach((m, i) => {
    const at = `messages.${i}`;
    if (typeof m.content === 'string') {
      out.push({ role: m.role, content: wellFormed(m.content) });
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
          if (m.role !== 'assistant') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${bat}: tool_use blocks belong to assistant messages.`], { param: bat });
          const u = block as AnthropicToolUseBlock;
          // Checked before JSON.stringify, which recurses (and overflows on a deep enough input).
          if (jsonValueTooDeep(u.input)) throw tooDeepError(`${bat}.input`);
          calls.push({ id: u.id, type: 'function', function: { name: u.name, arguments: JSON.stringify(u.input ?? {}) } });
          break;
        }
        case 'tool_result': {
          if (m.role !== 'user') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${bat}: tool_result blocks belong to user messages.`], { param: bat });
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
    if (m.role === 'assistant') {
      if (text !== '' || calls.length > 0) out.push({ role: 'assistant', content: text === '' && calls.length > 0 ? null : text, ...(calls.length === 0 ? {} : { tool_calls: calls }) });
    } else if (text !== '' || results.length === 0) out.push({ role: 'user', content: text });
  });
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

export function translateMessagesRequest(body: CreateMessageBody): ChatRequestBody {
  const tools = anthropicTools(body.tools);
  const choice = tools.length === 0 && body.tool_choice?.type === 'none' ? undefined : anthropicToolChoice(body.tool_choice);
  return {
    model: body.model,
    messages: anthropicMessages(body),
    ...(body.max_tokens === undefined ? {} : { max_completion_tokens: body.max_tokens }),
    ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
    ...(body.top_p === undefined ? {} : { top_p: body.top_p }),
    ...(body.top_k === undefined ? {} : { top_k: body.top_k }),
    ...(body.stop_sequences === undefined ? {} : { stop: body.stop_sequences }),
    ...(tools.length === 0 ? {} : { tools }),
    ...(choice === undefined ? {} : { tool_choice: choice }),
    ...(body.tool_choice?.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {}),
    ...(body.thinking?.type === 'disabled' ? { chat_template_kwargs: { enable_thinking: false } } : {}),
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

/** `{"type":"error","error":{"type","message"}}`, what the Anthropic SDKs parse. */
export function anthropicErrorBody(status: number, message: string): { type: 'error'; error: { type: string; message: string } } {
  return { type: 'error', error: { type: anthropicErrorType(status), message } };
}
