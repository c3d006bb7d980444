/** The tool-call syntaxes hearth reads and writes; one per model family's chat template. */
export const TOOL_SYNTAXES = ['hermes', 'llama3_json', 'mistral'] as const;
export type ToolSyntax = (typeof TOOL_SYNTAXES)[number];

/**
 * Picks the syntax a model emits tool calls in. The chat template is the stronger signal (it is
 * what the model was trained to answer): Qwen2.5/Qwen3 and NousHermes templates describe
 * `<tool_call>` blocks, Mistral's describe `[TOOL_CALLS]`, Llama 3.1's mention `<|python_tag|>` or
 * ask for `{"name": ..., "parameters": ...}`. The family name is the fallback.
 */
export function toolSyntaxFor(family: string, template: string): ToolSyntax {
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('[TOOL_CALLS]')) return 'mistral';
  if (template.includes('<|python_tag|>') || template.includes('"parameters"')) return 'llama3_json';
  const f = family.toLowerCase();
  if (f.includes('mistral') || f.includes('mixtral')) return 'mistral';
  if (f.includes('llama')) return 'llama3_json';
  return 'hermes';
}
