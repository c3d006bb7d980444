import { HearthError } from '../errors/index.ts';
import type { ToolBody } from './openai-types.ts';
import { isMcpTool } from './responses-mcp-tools.ts';
import type { ResponseFunctionTool, ResponseNamespaceTool } from './responses-types.ts';

// A Responses request's `tools` → the chat tools the model is offered, as Codex CLI sends them
// (issue 21 item 2; codex-rs/tools/src/tool_spec.rs, responses_api.rs):
//   function    offered as is.
//   namespace   {name, description, tools: [function...]}: a group of the client's own functions.
//               Each is offered as `NAMESPACE.NAME` (one flat list is what chat templates render)
//               and a call comes back as {name: NAME, namespace: NAMESPACE}, as OpenAI answers and
//               as Codex matches it; a function_call item sent back with its namespace is read the
//               same way.
//   mcp         hearth's own to run (responses-mcp-tools.ts): neither offered here nor dropped.
//   any other   a hosted tool OpenAI would run on its servers (web_search, file_search,
//               code_interpreter, computer_use, image_generation, local_shell, tool_search, ...):
//               hearth cannot, so by default it is left out — said in the response and the log,
//               because a client that sends web_search with every turn (Codex does) should still
//               get its turn — or, with server.hostedTools = refuse, a 400.

/** How a hosted tool is treated (config server.hostedTools). */
export type HostedToolPolicy = 'drop' | 'refuse';

export interface QualifiedName {
  readonly namespace: string;
  readonly name: string;
}

export interface ResponsesToolPlan {
  /** What the model is offered (chat tools). */
  readonly chat: ToolBody[];
  /** Model-facing name → the namespace and name a call is reported under. */
  readonly namespaced: ReadonlyMap<string, QualifiedName>;
  /** The hosted tools left out: index in `tools` and type. */
  readonly dropped: readonly { readonly index: number; readonly type: string }[];
  /** The request's tools less the dropped ones (what the response echoes). */
  readonly kept: readonly { readonly type: string }[];
}

/** The one name the model sees for a namespaced function. */
export function qualifiedName(namespace: string, name: string): string {
  return `${namespace}.${name}`;
}

export function planResponsesTools(tools: readonly { readonly type: string }[] | undefined, policy: HostedToolPolicy): ResponsesToolPlan {
  const chat: ToolBody[] = [];
  const namespaced = new Map<string, QualifiedName>();
  const dropped: { index: number; type: string }[] = [];
  const kept: { type: string }[] = [];
  const seen = new Set<string>();
  const offer = (f: ResponseFunctionTool, name: string, param: string): void => {
    if (seen.has(name)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid 'tools': duplicate function name '${name}'.`], { param });
    seen.add(name);
    chat.push(toChatTool(f, name));
  };
  (tools ?? []).forEach((t, i) => {
    if (t.type === 'function') {
      const f = t as ResponseFunctionTool;
      offer(f, f.name, `tools[${i}].name`);
      kept.push(t);
    } else if (t.type === 'namespace') {
      const ns = t as ResponseNamespaceTool;
      ns.tools.forEach((inner, j) => {
        const at = `tools[${i}].tools[${j}]`;
        if (inner.type !== 'function') {
          throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid value for '${at}.type': '${inner.type.slice(0, 64)}' inside a namespace is not supported; hearth offers a namespace's 'function' tools.`], { param: `${at}.type` });
        }
        const f = inner as ResponseFunctionTool;
        const name = qualifiedName(ns.name, f.name);
        offer(f, name, `${at}.name`);
        namespaced.set(name, { namespace: ns.name, name: f.name });
      });
      kept.push(t);
    } else if (isMcpTool(t)) {
      kept.push(t);
    } else {
      if (policy === 'refuse') throw new HearthError('HEARTH_ERR_HOSTED_TOOL', [i, t.type.slice(0, 64)], { param: `tools[${i}].type` });
      dropped.push({ index: i, type: t.type.slice(0, 64) });
    }
  });
  return { chat, namespaced, dropped, kept };
}

/** The notice a response carries for the hosted tools it left out (null when none were). */
export function droppedNotice(dropped: ResponsesToolPlan['dropped']): string | null {
  if (dropped.length === 0) return null;
  const types = [...new Set(dropped.map((d) => d.type))].join(', ');
  return `hearth does not run hosted tools; left out of this response: ${types} (server.hostedTools = refuse makes this a 400)`;
}

function toChatTool(f: ResponseFunctionTool, name: string): ToolBody {
  return {
    type: 'function',
    function: {
      name,
      ...(typeof f.description === 'string' ? { description: f.description } : {}),
      ...(f.parameters === undefined || f.parameters === null ? {} : { parameters: f.parameters }),
      // The Responses API makes function tools strict unless told otherwise.
      strict: f.strict ?? true,
    },
  };
}
