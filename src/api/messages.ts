import { HearthError } from '../errors/index.ts';
import type { ChatMessage } from '../tokenizer/types.ts';
import type { ChatMessageBody, ContentPartBody } from './openai-types.ts';

// OpenAI chat messages → the ChatMessage list the chat template renders.

/** Part types that carry text. `input_text` is what the Responses API and some clients send. */
const TEXT_PARTS = new Set(['text', 'input_text', 'output_text', 'refusal']);
/** Parts that need a model this one is not (it reads text only): a clear 400, never silence. */
const MEDIA_PARTS = new Set(['image_url', 'input_image', 'image', 'input_audio', 'audio', 'file', 'input_file', 'video_url']);

/** Lone UTF-16 surrogates (from "\ud800" escapes) cannot be tokenized; replace them with U+FFFD. */
export function wellFormed(s: string): string {
  // ES2024 String methods (Node 20 has them; the project's lib is ES2023).
  const w = s as unknown as { isWellFormed(): boolean; toWellFormed(): string };
  return w.isWellFormed() ? s : w.toWellFormed();
}

/**
 * Deepest nesting allowed in tool-call arguments (a chat message's tool_calls, an Anthropic
 * tool_use input). Templates render them with recursive `tojson`, and a 5,000-deep input
 * overflowed the stack into a 500 (issue 19); real arguments nest a handful of levels.
 */
export const MAX_ARGUMENT_DEPTH = 64;

/** Whether JSON text nests objects/arrays deeper than `max` (a scan, no parse, no recursion). */
export function jsonTextTooDeep(text: string, max = MAX_ARGUMENT_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Whether a parsed JSON value nests deeper than `max` (iterative: no stack to overflow). */
export function jsonValueTooDeep(value: unknown, max = MAX_ARGUMENT_DEPTH): boolean {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d + 1 > max) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: x, d: d + 1 });
  }
  return false;
}

export function tooDeepError(param: string): HearthError {
  return new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${param}': tool arguments nest deeper than ${MAX_ARGUMENT_DEPTH} levels (limit ${MAX_ARGUMENT_DEPTH}).`], { param });
}

/** A message's content as text: strings as they are, text parts joined with newlines. */
export function contentText(content: ChatMessageBody['content'], param: string): string | null {
  if (content === undefined || content === null) return null;
  if (typeof content === 'string') return wellFormed(content);
  const texts: string[] = [];
  content.forEach((part: ContentPartBody, j) => {
    const at = `${param}[${j}]`;
    if (TEXT_PARTS.has(part.type)) {
      const text = part.type === 'refusal' ? part.refusal : part.text;
      if (typeof text !== 'string') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Missing required parameter: '${at}.${part.type === 'refusal' ? 'refusal' : 'text'}'.`], { param: `${at}.text` });
      texts.push(wellFormed(text));
    } else if (MEDIA_PARTS.has(part.type)) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid content part type '${part.type}' at '${at}': this model reads text only (send {"type":"text","text":...} parts).`], { param: `${at}.type` });
    } else {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid value: '${part.type.slice(0, 64)}'. Supported content part types are: 'text'.`], { param: `${at}.type` });
    }
  });
  return texts.join('\n');
}

/**
 * Validates the conversation beyond what the schema can say, and maps it for the template:
 * `developer` becomes `system` (templates predate the role; OpenAI treats them alike), a `tool`
 * message needs the tool_call_id of an earlier assistant tool call, a user/system message needs
 * content.
 */
export function toChatMessages(messages: readonly ChatMessageBody[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  const callIds = new Set<string>();
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    const content = contentText(m.content, `${at}.content`);
    switch (m.role) {
      case 'system':
      case 'developer':
      case 'user':
        if (content === null) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Missing required parameter: '${at}.content'.`], { param: `${at}.content` });
        out.push({ role: m.role === 'developer' ? 'system' : m.role, content, ...(m.name === undefined ? {} : { name: m.name }) });
        break;
      case 'assistant': {
        const calls = m.tool_calls ?? [];
        if (content === null && calls.length === 0) {
          throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${at}': an assistant message needs 'content' or 'tool_calls'.`], { param: `${at}.content` });
        }
        calls.forEach((c, k) => {
          if (jsonTextTooDeep(c.function.arguments)) throw tooDeepError(`${at}.tool_calls[${k}].function.arguments`);
          callIds.add(c.id);
        });
        out.push({
          role: 'assistant',
          content,
          ...(m.name === undefined ? {} : { name: m.name }),
          ...(calls.length === 0
            ? {}
            : { tool_calls: calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.function.name, arguments: wellFormed(c.function.arguments) } })) }),
        });
        break;
      }
      case 'tool': {
        if (m.tool_call_id === undefined) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Missing required parameter: '${at}.tool_call_id'.`], { param: `${at}.tool_call_id` });
        if (!callIds.has(m.tool_call_id)) {
          throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (no tool call has id '${m.tool_call_id.slice(0, 64)}').`], { param: `${at}.tool_call_id` });
        }
        out.push({ role: 'tool', content: content ?? '', tool_call_id: m.tool_call_id, ...(m.name === undefined ? {} : { name: m.name }) });
        break;
      }
    }
  });
  return out;
}
