import type { ValidateFunction } from 'ajv';
import { newTally } from '../chat/constraint/index.ts';
import { HearthError } from '../errors/index.ts';
import type { ToolDef } from '../tokenizer/types.ts';
import type { ToolBody, ToolChoiceBody } from './openai-types.ts';
import { checkUserSchema, compileUserSchema } from './user-schemas.ts';

// tools + tool_choice + parallel_tool_calls → what the template renders, whether decoding is
// constrained, and the validators the returned arguments are checked with.
//   none      tools are not rendered and the output is never parsed for calls (peers that render
//             them anyway get calls back the client said it did not want)
//   auto      rendered; the model's own syntax is parsed; constrained only when a tool is strict
//   required  constrained: at least one call, always valid
//   named     constrained: exactly that function (one call, or several when parallel)

export const TOOL_MODES = ['none', 'auto', 'auto-strict', 'required', 'named'] as const;
export type ToolMode = (typeof TOOL_MODES)[number];

export interface ToolPlan {
  readonly mode: ToolMode;
  /** Tools for the chat template (empty for 'none'). */
  readonly defs: readonly ToolDef[];
  /** The function tool_choice names ('named' only). */
  readonly name?: string;
  readonly parallel: boolean;
  /** Argument validators by function name. */
  readonly validators: ReadonlyMap<string, ValidateFunction>;
}

const EMPTY_OBJECT_SCHEMA = Object.freeze({ type: 'object' });

export function planTools(tools: readonly ToolBody[] | undefined, choice: ToolChoiceBody | undefined, parallelToolCalls: boolean | null | undefined): ToolPlan | null {
  const list = tools ?? [];
  if (list.length === 0) {
    // Clients (LangChain among them) send tool_choice "auto"/"none" with no tools; harmless.
    if (choice === 'required' || typeof choice === 'object') {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."], { param: 'tool_choice' });
    }
    return null;
  }
  const validators = new Map<string, ValidateFunction>();
  const defs: ToolDef[] = [];
  let anyStrict = false;
  // The tools decode as one grammar (a call to any of them): their schemas share one budget.
  const tally = newTally();
  // Calls are checked against the schemas only when decoding is constrained (required, named, a
  // strict tool); otherwise a schema is checked now and compiled only if ever used.
  const constrained = choice === 'required' || typeof choice === 'object' || list.some((t) => t.function.strict === true);
  list.forEach((t, i) => {
    const f = t.function;
    if (validators.has(f.name)) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid 'tools': duplicate function name '${f.name}'.`], { param: `tools[${i}].function.name` });
    }
    const params = f.parameters ?? EMPTY_OBJECT_SCHEMA;
    let validate: ValidateFunction;
    try {
      validate = constrained ? compileUserSchema(params, tally) : checkUserSchema(params, tally);
    } catch (e) {
      throw new HearthError('HEARTH_ERR_TOOL_SCHEMA', [f.name, (e as Error).message.slice(0, 300)], { param: `tools[${i}].function.parameters`, cause: e });
    }
    validators.set(f.name, validate);
    if (f.strict === true) anyStrict = true;
    defs.push({
      type: 'function',
      function: {
        name: f.name,
        ...(f.description === undefined ? {} : { description: f.description }),
        parameters: params as Record<string, unknown>,
        ...(f.strict === undefined || f.strict === null ? {} : { strict: f.strict }),
      },
    });
  });
  const parallel = parallelToolCalls !== false;
  if (choice === 'none') return { mode: 'none', defs: [], parallel, validators };
  if (choice === undefined || choice === 'auto') return { mode: anyStrict ? 'auto-strict' : 'auto', defs, parallel, validators };
  if (choice === 'required') return { mode: 'required', defs, parallel, validators };
  const name = choice.function.name;
  if (!validators.has(name)) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid value for 'tool_choice': no function named '${name}' is specified in the 'tools' parameter.`], { param: 'tool_choice' });
  }
  return { mode: 'named', name, defs, parallel, validators };
}
