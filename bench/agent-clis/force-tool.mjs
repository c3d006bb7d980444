// The "tool" run's stand-in for an option none of the coding-agent CLIs has: forcing a tool call.
// Each CLI sends tool_choice auto on every request, and the demo's random model never calls a tool
// unforced, so the proxy rewrites the turn's first request that offers tools (and carries no tool
// result yet) to force one of them — by name, in the wire format of the API it goes to — and leaves
// every later request as the client sent it. The CLI then runs the call, sends its result back, and
// the model's next answer (unforced) ends the turn: the agent loop, end to end.
//
// Only tools whose random arguments cannot do harm are forced (a plan/todo list, a read, a listing);
// a CLI that offers none of them is reported, not forced onto a shell.

const HARMLESS = [
  /^(update_plan|todo_?write|TodoWrite|todowrite|Checklist|get_goal)$/i,
  /^(read|read_file|Read|view|ReadFile|view_image)$/i,
  /^(glob|Glob|list|List|ls|LS|list_directory)$/i,
];

function chooseTool(names) {
  for (const pattern of HARMLESS) {
    const hit = names.find((n) => pattern.test(n));
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/** Function tool names a request offers, per API (namespace and hosted tools are not forced). */
function offeredNames(api, body) {
  const tools = Array.isArray(body.tools) ? body.tools : [];
  if (api === 'chat') return tools.filter((t) => t?.type === 'function').map((t) => t.function?.name).filter(Boolean);
  if (api === 'responses') return tools.filter((t) => t?.type === 'function').map((t) => t.name).filter(Boolean);
  return tools.filter((t) => t?.type === undefined || t?.type === 'custom').map((t) => t.name).filter(Boolean);
}

/** Whether the conversation already holds a tool's result (the forced call was answered). */
function hasToolResult(api, body) {
  if (api === 'chat') return (body.messages ?? []).some((m) => m?.role === 'tool');
  if (api === 'responses') return Array.isArray(body.input) && body.input.some((i) => i?.type === 'function_call_output');
  return (body.messages ?? []).some((m) => Array.isArray(m?.content) && m.content.some((b) => b?.type === 'tool_result'));
}

function apiOf(path) {
  if (/\/v1\/chat\/completions(\?|$)/.test(path)) return 'chat';
  if (/\/v1\/responses(\?|$)/.test(path)) return 'responses';
  if (/\/v1\/messages(\?|$)/.test(path)) return 'messages';
  return undefined;
}

/**
 * A forcer with its own state (one per proxy, one proxy per CLI run). `rewrite(path, body)` returns
 * `{ body, forced }` when it forced a tool on this request, `{ offered }` when the request offered
 * tools but none it will force, `{ toolResult: true }` for a request that carries a tool's result
 * back (passed through), or undefined to pass the request through untouched.
 */
export function toolForcer() {
  let done = false;
  return {
    rewrite(path, raw) {
      const api = apiOf(path);
      if (api === undefined || raw.length === 0) return undefined;
      let body;
      try { body = JSON.parse(raw.toString('utf8')); } catch { return undefined; }
      if (hasToolResult(api, body)) return { toolResult: true };
      const names = offeredNames(api, body);
      if (done || names.length === 0) return undefined;
      const name = chooseTool(names);
      if (name === undefined) return { offered: names };
      done = true;
      body.tool_choice = api === 'chat' ? { type: 'function', function: { name } }
        : api === 'responses' ? { type: 'function', name }
        : { type: 'tool', name };
      // Anthropic refuses a forced tool with thinking on; Claude Code's -p turns send it off, but keep the
      // request one Anthropic would take.
      if (api === 'messages' && body.thinking?.type !== undefined && body.thinking.type !== 'disabled') body.thinking = { type: 'disabled' };
      return { body: Buffer.from(JSON.stringify(body)), forced: name };
    },
  };
}
