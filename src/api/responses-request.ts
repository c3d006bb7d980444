import { HearthError } from '../errors/index.ts';
import { contentText } from './messages.ts';
import type { ChatMessageBody, ChatRequestBody, ResponseFormatBody, ToolChoiceBody } from './openai-types.ts';
import { planResponsesTools, qualifiedName, type HostedToolPolicy, type ResponsesToolPlan } from './responses-tools.ts';
import type { CreateResponseBody, ResponseFunctionCallItem, ResponseFunctionCallOutputItem, ResponseInputItem, ResponseMessageItem } from './responses-types.ts';

// A Responses API request (plus the stored conversation its previous_response_id names) → the chat
// request hearth already knows how to plan: items become chat messages, flat function tools become
// chat tools, text.format becomes response_format. Pure; the route runs the result like a chat.
// Field mapping follows https://platform.openai.com/docs/guides/migrate-to-responses.

export interface ResponsesTranslation {
  readonly chat: ChatRequestBody;
  /** The whole conversation as input items (what a stored response keeps for its successor). */
  readonly items: readonly ResponseInputItem[];
  /** The tools as offered: namespaced names, hosted tools left out (responses-tools.ts). */
  readonly tools: ResponsesToolPlan;
}

/** The input as items: a string is one user message. */
export function inputItems(input: CreateResponseBody['input']): ResponseInputItem[] {
  if (input === undefined) return [];
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: input }];
  return [...input];
}

export function translateResponsesRequest(body: CreateResponseBody, history: readonly ResponseInputItem[], hostedTools: HostedToolPolicy = 'drop'): ResponsesTranslation {
  const items = [...history, ...inputItems(body.input)];
  const messages: ChatMessageBody[] = [];
  if (typeof body.instructions === 'string' && body.instructions !== '') messages.push({ role: 'system', content: body.instructions });
  for (const m of itemsToMessages(items, history.length)) {
    // Instructions and leading system/developer items become one system message: Codex CLI sends
    // both, and many chat templates accept a system message only as the first message.
    const only = messages.length === 1 ? messages[0]! : undefined;
    if ((m.role === 'system' || m.role === 'developer') && only?.role === 'system') {
      messages[0] = { role: 'system', content: `${String(only.content)}\n\n${String(m.content)}` };
    } else messages.push(m.role === 'developer' && messages.length === 0 ? { ...m, role: 'system' } : m);
  }
  if (messages.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["Missing required parameter: 'input'."], { param: 'input' });
  const plan = planResponsesTools(body.tools, hostedTools);
  const tools = plan.chat;
  const format = body.text?.format;
  const effort = body.reasoning?.effort;
  const chat: ChatRequestBody = {
    model: body.model,
    messages,
    ...(body.max_output_tokens === undefined || body.max_output_tokens === null ? {} : { max_completion_tokens: body.max_output_tokens }),
    ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
    ...(body.top_p === undefined ? {} : { top_p: body.top_p }),
    ...(body.seed === undefined ? {} : { seed: body.seed }),
    ...(tools.length === 0 ? {} : { tools }),
    ...(body.tool_choice === undefined ? {} : { tool_choice: toChatToolChoice(body.tool_choice, plan) }),
    ...(body.parallel_tool_calls === undefined ? {} : { parallel_tool_calls: body.parallel_tool_calls }),
    ...(format === undefined ? {} : { response_format: toResponseFormat(format) }),
    // Templates with a thinking switch (Qwen3's enable_thinking) honour "no reasoning, please".
    ...(effort === 'minimal' || effort === 'none' ? { chat_template_kwargs: { enable_thinking: false } } : {}),
  };
  return { chat, items, tools: plan };
}

/**
 * Items → chat messages. A function_call joins the assistant message before it (the template
 * renders one assistant turn with its calls), a function_call_output is a tool message, reasoning
 * items are dropped (the model thinks afresh each turn, as the chat template renders it).
 */
export function itemsToMessages(items: readonly ResponseInputItem[], historyLength = 0): ChatMessageBody[] {
  const out: { role: ChatMessageBody['role']; content: string | null; tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[]; tool_call_id?: string }[] = [];
  items.forEach((item, i) => {
    const at = i < historyLength ? `previous_response_id (item ${i})` : `input[${i - historyLength}]`;
    const type = item.type ?? 'message';
    switch (type) {
      case 'message': {
        const m = item as ResponseMessageItem;
        const text = contentText(m.content, `${at}.content`) ?? '';
        out.push({ role: m.role, content: text });
        break;
      }
      case 'function_call': {
        const c = item as ResponseFunctionCallItem;
        // A namespaced call is rendered under the name the model was offered it by.
        const name = typeof c.namespace === 'string' && c.namespace !== '' ? qualifiedName(c.namespace, c.name) : c.name;
        const call = { id: c.call_id, type: 'function' as const, function: { name, arguments: c.arguments } };
        const last = out.at(-1);
        if (last !== undefined && last.role === 'assistant') (last.tool_calls ??= []).push(call);
        else out.push({ role: 'assistant', content: null, tool_calls: [call] });
        break;
      }
      case 'function_call_output': {
        const o = item as ResponseFunctionCallOutputItem;
        const text = typeof o.output === 'string' ? o.output : (contentText(o.output, `${at}.output`) ?? '');
        out.push({ role: 'tool', content: text, tool_call_id: o.call_id });
        break;
      }
      case 'reasoning':
        break;
      default:
        throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid input item type '${type.slice(0, 64)}' at '${at}': hearth accepts message, function_call, function_call_output and reasoning items.`], { param: `${at}.type` });
    }
  });
  return out as ChatMessageBody[];
}

function toChatToolChoice(c: NonNullable<CreateResponseBody['tool_choice']>, tools: ResponsesToolPlan): ToolChoiceBody {
  // "auto" with every tool dropped (hosted ones only) is no tools at all; "required" is a 400.
  if (typeof c === 'string') return c;
  if (c.type === 'function' && typeof c.name === 'string') return { type: 'function', function: { name: choiceName(c.name, c.namespace, tools) } };
  throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid value for 'tool_choice': '${c.type.slice(0, 64)}' is not supported; use 'none', 'auto', 'required' or {"type":"function","name":...}.`], { param: 'tool_choice' });
}

/** A forced function's model-facing name: {name, namespace}; or a bare name that only one
 *  namespace has (OpenAI's tool_choice has no namespace field; a flat function of that name wins). */
function choiceName(name: string, namespace: string | undefined, tools: ResponsesToolPlan): string {
  if (typeof namespace === 'string' && namespace !== '') return qualifiedName(namespace, name);
  if (tools.chat.some((t) => t.function.name === name)) return name;
  const inner = [...tools.namespaced].filter(([, q]) => q.name === name);
  return inner.length === 1 ? inner[0]![0] : name;
}

function toResponseFormat(f: NonNullable<NonNullable<CreateResponseBody['text']>['format']>): ResponseFormatBody {
  if (f.type !== 'json_schema') return { type: f.type };
  return { type: 'json_schema', json_schema: { name: f.name, schema: f.schema, ...(f.description === undefined ? {} : { description: f.description }), ...(f.strict === undefined ? {} : { strict: f.strict }) } };
}

/** Chat's param names in errors, spelled as the Responses API spells them. */
export function responsesParam(param: string | null): string | null {
  if (param === null) return null;
  return param
    .replace(/^messages\b.*/, 'input')
    .replace(/^response_format\.json_schema\.?/, 'text.format.')
    .replace(/^response_format$/, 'text.format')
    .replace(/^max_completion_tokens$/, 'max_output_tokens')
    .replace(/^tools\[(\d+)\]\.function\./, 'tools[$1].')
    .replace(/\.$/, '');
}
