import { createToolCallParser } from './parser.ts';
import type { ToolCallParserOptions } from './parser.ts';
import type { ToolSyntax } from './syntax.ts';

export interface ParsedToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

export interface ParsedToolCalls {
  /** Text outside calls; null when there is none (OpenAI sends null beside tool_calls). */
  readonly content: string | null;
  readonly toolCalls: ParsedToolCall[];
}

/**
 * Whole-text parsing for non-streaming responses. Runs the streaming parser over the text, so
 * both paths produce identical content, ids (same seed) and arguments strings.
 */
export function parseToolCalls(syntax: ToolSyntax, text: string, opts: ToolCallParserOptions = {}): ParsedToolCalls {
  const p = createToolCallParser(syntax, opts);
  let content = '';
  const calls: { id: string; name: string; arguments: string }[] = [];
  for (const ev of [...p.push(text), ...p.end()]) {
    if (ev.type === 'content') content += ev.text;
    else if (ev.type === 'tool_call_start') calls[ev.index] = { id: ev.id, name: ev.name, arguments: '' };
    else if (ev.type === 'tool_call_args') calls[ev.index]!.arguments += ev.fragment;
  }
  return { content: content === '' ? null : content, toolCalls: calls };
}
