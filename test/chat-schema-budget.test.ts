// The schema budget (src/chat/constraint/schema-budget.ts, issue 19 items 2 and 8): what one
// request's JSON Schemas may cost before ajv or the grammar compiler sees them. Each limit refuses
// with a message naming it; a coding agent's real tool set stays far inside every limit; $ref
// cycles that write nothing are refused while recursion through properties/items is kept.
import t from 'tap';
import { compileUserSchema } from '../src/api/user-schemas.ts';
import { planTools } from '../src/api/tools.ts';
import { SCHEMA_BUDGET, SchemaTooCostly, checkSchemaBudget, compileSchema, newTally } from '../src/chat/constraint/index.ts';
import { isHearthError } from '../src/errors/index.ts';

const refusal = (schema: unknown): SchemaTooCostly | null => {
  try {
    checkSchemaBudget(schema);
    return null;
  } catch (e) {
    if (e instanceof SchemaTooCostly) return e;
    throw e;
  }
};

// A coding agent's tool set, shaped like Claude Code's (Bash, Read, Edit, MultiEdit, Write, Glob,
// Grep, TodoWrite, WebFetch, WebSearch, Task, NotebookEdit, ExitPlanMode) and Codex's (shell,
// apply_patch, update_plan): object parameters with long descriptions, enums, nested arrays.
const str = (description: string): object => ({ type: 'string', description });
const agentTools: { name: string; parameters: Record<string, unknown> }[] = [
  { name: 'Bash', parameters: { type: 'object', properties: { command: str('The command to execute'), timeout: { type: 'number', description: 'Optional timeout in milliseconds (max 600000)' }, description: str('Clear, concise description of what this command does in 5-10 words'), run_in_background: { type: 'boolean', description: 'Run in the background' } }, required: ['command'], additionalProperties: false, $schema: 'http://json-schema.org/draft-07/schema#' } },
  { name: 'Read', parameters: { type: 'object', properties: { file_path: str('The absolute path to the file to read'), offset: { type: 'number', description: 'The line number to start reading from' }, limit: { type: 'number', description: 'The number of lines to read' } }, required: ['file_path'], additionalProperties: false } },
  { name: 'Edit', parameters: { type: 'object', properties: { file_path: str('The absolute path to the file to modify'), old_string: str('The text to replace'), new_string: str('The text to replace it with'), replace_all: { type: 'boolean', default: false, description: 'Replace all occurences' } }, required: ['file_path', 'old_string', 'new_string'], additionalProperties: false } },
  { name: 'MultiEdit', parameters: { type: 'object', properties: { file_path: str('The absolute path to the file to modify'), edits: { type: 'array', minItems: 1, description: 'Array of edit operations', items: { type: 'object', properties: { old_string: str('The text to replace'), new_string: str('The text to replace it with'), replace_all: { type: 'boolean', default: false } }, required: ['old_string', 'new_string'], additionalProperties: false } } }, required: ['file_path', 'edits'], additionalProperties: false } },
  { name: 'Write', parameters: { type: 'object', properties: { file_path: str('The absolute path to the file to write'), content: str('The content to write to the file') }, required: ['file_path', 'content'], additionalProperties: false } },
  { name: 'Glob', parameters: { type: 'object', properties: { pattern: str('The glob pattern to match files against'), path: str('The directory to search in') }, required: ['pattern'], additionalProperties: false } },
  { name: 'Grep', parameters: { type: 'object', properties: { pattern: str('The regular expression pattern'), path: str('File or directory to search in'), glob: str('Glob pattern to filter files'), output_mode: { type: 'string', enum: ['content', 'files_with_matches', 'count'], description: 'Output mode' }, '-B': { type: 'number' }, '-A': { type: 'number' }, '-C': { type: 'number' }, '-n': { type: 'boolean' }, '-i': { type: 'boolean' }, type: str('File type to search'), head_limit: { type: 'number' }, multiline: { type: 'boolean' } }, required: ['pattern'], additionalProperties: false } },
  { name: 'TodoWrite', parameters: { type: 'object', properties: { todos: { type: 'array', description: 'The updated todo list', items: { type: 'object', properties: { content: { type: 'string', minLength: 1 }, status: { type: 'string', enum: ['pending', 'in_progress', 'completed'] }, priority: { type: 'string', enum: ['high', 'medium', 'low'] }, id: { type: 'string' } }, required: ['content', 'status', 'priority', 'id'], additionalProperties: false } } }, required: ['todos'], additionalProperties: false } },
  { name: 'WebFetch', parameters: { type: 'object', properties: { url: { type: 'string', format: 'uri', description: 'The URL to fetch content from' }, prompt: str('The prompt to run on the fetched content') }, required: ['url', 'prompt'], additionalProperties: false } },
  { name: 'WebSearch', parameters: { type: 'object', properties: { query: { type: 'string', minLength: 2 }, allowed_domains: { type: 'array', items: { type: 'string' } }, blocked_domains: { type: 'array', items: { type: 'string' } } }, required: ['query'], additionalProperties: false } },
  { name: 'Task', parameters: { type: 'object', properties: { description: str('A short (3-5 word) description of the task'), prompt: str('The task for the agent to perform'), subagent_type: str('The type of specialized agent to use') }, required: ['description', 'prompt', 'subagent_type'], additionalProperties: false } },
  { name: 'NotebookEdit', parameters: { type: 'object', properties: { notebook_path: str('The absolute path to the notebook'), cell_id: str('The ID of the cell to edit'), new_source: str('The new source for the cell'), cell_type: { type: 'string', enum: ['code', 'markdown'] }, edit_mode: { type: 'string', enum: ['replace', 'insert', 'delete'] } }, required: ['notebook_path', 'new_source'], additionalProperties: false } },
  { name: 'ExitPlanMode', parameters: { type: 'object', properties: { plan: str('The plan you came up with') }, required: ['plan'], additionalProperties: false } },
  { name: 'shell', parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } }, workdir: { type: 'string' }, timeout_ms: { type: 'number' }, with_escalated_permissions: { type: 'boolean' }, justification: { type: 'string' } }, required: ['command'], additionalProperties: false } },
  { name: 'apply_patch', parameters: { type: 'object', properties: { input: str('The entire contents of the apply_patch command') }, required: ['input'], additionalProperties: false } },
  { name: 'update_plan', parameters: { type: 'object', properties: { explanation: { type: 'string' }, plan: { type: 'array', items: { type: 'object', properties: { step: { type: 'string' }, status: { type: 'string', enum: ['pending', 'in_progress', 'completed'] } }, required: ['step', 'status'], additionalProperties: false } } }, required: ['plan'], additionalProperties: false } },
];

t.test('a coding agent\'s whole tool set spends a small part of the budget', async (t) => {
  const tally = newTally();
  for (const tool of agentTools) checkSchemaBudget(tool.parameters, SCHEMA_BUDGET, tally);
  t.comment(`${agentTools.length} tools: ${tally.nodes} JSON values, ${tally.enumValues} enum values, ${tally.alternatives} branches`);
  t.ok(tally.nodes * 10 < SCHEMA_BUDGET.nodes, `under a tenth of the nodes limit (${tally.nodes})`);
  t.ok(tally.enumValues * 10 < SCHEMA_BUDGET.enumValues, 'under a tenth of the enum limit');
  // And the request path accepts it: one tool plan for all of them, every validator compiled.
  const plan = planTools(agentTools.map((x) => ({ type: 'function' as const, function: { name: x.name, parameters: x.parameters } })), 'required', true);
  t.equal(plan?.validators.size, agentTools.length);
});

t.test('each limit refuses with a message naming it', async (t) => {
  const cases: [string, unknown, string][] = [
    ['enum values', { enum: Array.from({ length: SCHEMA_BUDGET.enumValues + 1 }, (_, i) => i) }, 'enumValues'],
    ['enum values summed over the schema', { type: 'object', properties: { a: { enum: Array.from({ length: 1500 }, (_, i) => i) }, b: { enum: Array.from({ length: 1500 }, (_, i) => i) } } }, 'enumValues'],
    ['anyOf branches', { anyOf: Array.from({ length: SCHEMA_BUDGET.alternatives + 1 }, () => ({ type: 'string' })) }, 'alternatives'],
    ['depth', (() => { let s: unknown = { type: 'string' }; for (let i = 0; i < 70; i++) s = { type: 'object', properties: { x: s } }; return s; })(), 'depth'],
    ['JSON values', { type: 'object', properties: Object.fromEntries(Array.from({ length: 6000 }, (_, i) => [`p${i}`, { type: 'string' }])) }, 'nodes'],
    ['distinct patterns', { type: 'object', properties: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`p${i}`, { type: 'string', pattern: `^(a|b)*a(a|b){10}c${i}$` }])) }, 'patterns'],
  ];
  for (const [what, schema, limit] of cases) {
    const e = refusal(schema);
    t.equal(e?.limit, limit, what);
    t.match(e?.message ?? '', new RegExp(`limit ${limit} ${SCHEMA_BUDGET[limit as keyof typeof SCHEMA_BUDGET]}`), `${what}: the message names the limit and its value`);
  }
  // A pattern repeated (an ISO date on every field) compiles once and counts once.
  t.equal(refusal({ type: 'object', properties: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`d${i}`, { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' }])) }), null, '100 fields with one pattern are fine');
  // At the limit itself: accepted.
  t.equal(refusal({ enum: Array.from({ length: SCHEMA_BUDGET.enumValues }, (_, i) => i) }), null, 'exactly enumValues values are accepted');
});

t.test('the tools of one request share one budget (they decode as one grammar)', async (t) => {
  const tool = (name: string) => ({ type: 'function' as const, function: { name, parameters: { type: 'object', properties: { a: { enum: Array.from({ length: 1200 }, (_, i) => `${name}${i}`) } } } } });
  t.ok(planTools([tool('one')], 'auto', true), 'one tool of 1,200 enum values is fine');
  try {
    planTools([tool('one'), tool('two')], 'auto', true);
    t.fail('two of them are over 2,048');
  } catch (e) {
    t.ok(isHearthError(e) && e.code === 'HEARTH_ERR_TOOL_SCHEMA' && e.status === 400, String(e));
    t.match((e as Error).message, /limit enumValues 2048/);
    t.equal(isHearthError(e) ? e.param : null, 'tools[1].function.parameters', 'names the tool that went over');
  }
});

t.test('$ref cycles that write nothing are refused, recursion through properties is kept', async (t) => {
  const cycles: [string, unknown][] = [
    ['the root referring to itself', { $ref: '#' }],
    ['two $defs naming each other', { $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }],
    ['an anyOf branch that is the schema', { anyOf: [{ $ref: '#' }, { type: 'string' }] }],
    ['allOf of itself', { definitions: { x: { allOf: [{ $ref: '#/definitions/x' }] } }, type: 'object', properties: { p: { $ref: '#/definitions/x' } } }],
  ];
  for (const [what, schema] of cycles) {
    t.equal(refusal(schema)?.limit, '$ref', what);
    // Both compilers refuse it as a 400 (before: ajv or the first token overflowed the stack).
    t.throws(() => compileUserSchema(schema as Record<string, unknown>), /refers back to itself/, `${what}: compileUserSchema`);
    try {
      compileSchema(schema, 'response_format.json_schema.schema');
      t.fail(`${what}: compileSchema accepted it`);
    } catch (e) {
      t.ok(isHearthError(e) && e.status === 400, `${what}: compileSchema says 400 (${String(e)})`);
    }
  }
  const tree = { type: 'object', properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#' } } }, required: ['name'] };
  t.equal(refusal(tree), null, 'a tree (recursion through items) is accepted');
  t.equal(refusal({ $defs: { n: { anyOf: [{ type: 'null' }, { type: 'object', properties: { next: { $ref: '#/$defs/n' } } }] } }, $ref: '#/$defs/n' }), null, 'a linked list (recursion through a property) is accepted');
});

t.test('a schema deeper than the stack is refused without recursion', async (t) => {
  let s: unknown = {};
  for (let i = 0; i < 200_000; i++) s = { properties: { a: s } };
  t.equal(refusal(s)?.limit, 'depth');
});

t.test('tools on auto are checked up front and compiled only when used', async (t) => {
  const params = { type: 'object', properties: { city: { type: 'string', pattern: '^[A-Z]' }, days: { type: 'integer', minimum: 1 } }, required: ['city'] };
  const plan = planTools([{ type: 'function', function: { name: 'weather', parameters: params } }], 'auto', true);
  const v = plan?.validators.get('weather');
  t.ok(v, 'a validator is there');
  t.equal(v?.({ city: 'Paris', days: 2 }), true, 'valid arguments pass');
  t.equal(v?.({ city: 'paris' }), false, 'the pattern is enforced');
  t.equal(v?.({ days: 0 }), false, 'required and minimum are enforced');
  t.ok((v?.errors ?? []).length > 0, 'with errors to describe');
  // What compiling would refuse is still a 400 up front.
  for (const [what, bad] of [['a bad type', { type: 'objekt' }], ['a remote $ref', { $ref: 'https://example.com/s.json' }], ['a $ref to nowhere', { $ref: '#/$defs/missing' }]] as const) {
    try {
      planTools([{ type: 'function', function: { name: 'f', parameters: bad as Record<string, unknown> } }], 'auto', true);
      t.fail(`${what} accepted`);
    } catch (e) {
      t.ok(isHearthError(e) && e.code === 'HEARTH_ERR_TOOL_SCHEMA', `${what}: ${String(e)}`);
    }
  }
});
