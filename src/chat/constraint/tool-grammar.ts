// Grammars for constrained tool calls, one per syntax. The wrapper text is spelled exactly as the
// model's chat template teaches it (Qwen: `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`),
// so a real model follows its training; the arguments themselves are whitespace-free JSON that
// follows the tool's parameters schema.

import { HearthError } from '../../errors/index.ts';
import type { ToolDef } from '../../tokenizer/types.ts';
import type { ToolSyntax } from '../tool-calls/syntax.ts';
import { alt, lit, seq } from './grammar-node.ts';
import type { GNode } from './grammar-node.ts';
import { compileSchema } from './schema-compile.ts';

export type ToolCallMode = 'required' | 'named' | 'auto-strict';

export interface ToolGrammarSpec {
  readonly syntax: ToolSyntax;
  readonly tools: readonly ToolDef[];
  readonly mode: ToolCallMode;
  readonly name?: string | undefined;
  readonly parallel: boolean;
}

const enc = new TextEncoder();
const NO_PARAMS = { type: 'object', properties: {}, additionalProperties: false };

/** `{"name": "f", "<argsKey>": <schema>}` for one tool. */
function callObject(tool: ToolDef, argsKey: string, i: number): GNode {
  const name = tool.function.name;
  const params = compileSchema(tool.function.parameters ?? NO_PARAMS, `tools[${i}].function.parameters`);
  return seq(lit(`{"name": ${JSON.stringify(name)}, "${argsKey}": `), params, lit('}'));
}

export function toolCallGrammar(spec: ToolGrammarSpec): GNode {
  let tools = spec.tools.map((t, i) => ({ t, i }));
  if (spec.mode === 'named') {
    tools = tools.filter(({ t }) => t.function.name === spec.name);
    if (tools.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`tool_choice names function ${spec.name ?? '(none)'}, which is not in tools`], { param: 'tool_choice' });
  }
  if (tools.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['tool_choice requires a tool call but tools is empty'], { param: 'tools' });
  // A named choice means exactly one call, whatever parallel_tool_calls says.
  const many = spec.parallel && spec.mode !== 'named';

  switch (spec.syntax) {
    case 'hermes': {
      const body = alt(tools.map(({ t, i }) => seq(callObject(t, 'arguments', i), lit('\n</tool_call>'))));
      const call = seq(lit('<tool_call>\n'), body);
      if (spec.mode === 'auto-strict') {
        const then = many ? seq(lit('\n'), body, { k: 'rep', item: call, sep: enc.encode('\n'), min: 0 }) : seq(lit('\n'), body);
        return { k: 'text', trigger: enc.encode('<tool_call>'), then };
      }
      return many ? { k: 'rep', item: call, sep: enc.encode('\n'), min: 1 } : call;
    }
    case 'mistral': {
      const obj = alt(tools.map(({ t, i }) => callObject(t, 'arguments', i)));
      const list = many ? seq(lit('['), { k: 'rep', item: obj, sep: enc.encode(', '), min: 1 }, lit(']')) : seq(lit('['), obj, lit(']'));
      if (spec.mode === 'auto-strict') return { k: 'text', trigger: enc.encode('[TOOL_CALLS]'), then: list };
      return seq(lit('[TOOL_CALLS]'), list);
    }
    case 'llama3_json': {
      // Llama 3.1 has no parallel-call convention worth forcing; one call per turn.
      const obj = alt(tools.map(({ t, i }) => callObject(t, 'parameters', i)));
      if (spec.mode === 'auto-strict') return { k: 'text', trigger: enc.encode('<|python_tag|>'), then: obj };
      return obj;
    }
  }
}
