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
        for (const c of calls) callIds.add(c.id);
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
