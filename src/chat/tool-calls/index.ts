export { TOOL_SYNTAXES, toolSyntaxFor } from './syntax.ts';
export type { ToolSyntax } from './syntax.ts';
export { createToolCallParser } from './parser.ts';
export type { ToolCallEvent, ToolCallParser, ToolCallParserOptions } from './parser.ts';
export { parseToolCalls } from './parse.ts';
export type { ParsedToolCall, ParsedToolCalls } from './parse.ts';
export { toolCallId } from './call-ids.ts';
