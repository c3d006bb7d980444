// What one JSON Schema from a request may cost, checked before ajv or the grammar compiler sees it
// (issue 19, item 2). ajv writes an `===` per enum value and inlines every subschema, so its
// compile time grows with the schema's size (a 100k-value enum: 22 s; 13 nested anyOf copied at
// each level: 11 s), and the first token mask walks every enum value and alternative against the
// whole vocabulary (the 100k enum: 6 s). All of that ran on the gateway's event loop, so one body
// stalled /health and every worker's heartbeat. This walk is iterative (no stack to overflow),
// linear in the schema's JSON, and stops at the first limit passed with a message naming it.
//
// The defaults sit far above what agents send and below what stalls the loop: OpenAI's structured
// outputs allow 1,000 enum values and 5,000 properties; a 20-property tool is ~150 JSON values,
// so 17 tools of Claude Code size are ~2,500 of the 10,000 a request may spend (its tools share
// one tally: they decode as one grammar). At the limits ajv compiles in about a second once
// (user-schemas.ts caches it), the first token mask of 2,048 enum values takes ~0.1 s, and 16
// patterns at regex-dfa.ts's own limits compile in ~0.7 s.
//
// It also refuses a `$ref` cycle that reaches itself without writing anything (`{"$ref":"#"}`,
// two $defs naming each other, an anyOf whose branch is the schema itself): no JSON value ends
// such a grammar, and following it overflowed the stack (item 8). Recursion through properties or
// items (a tree of nodes) stays accepted.

export interface SchemaBudget {
  /** Enum values (and const) summed over the whole schema. */
  readonly enumValues: number;
  /** anyOf/oneOf/allOf branches summed over the whole schema. */
  readonly alternatives: number;
  /** Nesting of the schema's JSON (objects and arrays, keywords included). */
  readonly depth: number;
  /** JSON values in the schema (objects, arrays, strings, numbers...). */
  readonly nodes: number;
  /** Distinct `pattern` regexes: each compiles to an automaton (regex-dfa.ts: up to ~40 ms each
   *  within its own limits, and a schema could hold thousands). */
  readonly patterns: number;
}

/** Named defaults (the message names the limit and its value). */
export const SCHEMA_BUDGET: SchemaBudget = Object.freeze({ enumValues: 2048, alternatives: 256, depth: 64, nodes: 10_000, patterns: 16 });

/** A schema over budget: the message names the limit (the caller wraps it in its 400). */
export class SchemaTooCostly extends Error {
  constructor(readonly limit: keyof SchemaBudget | '$ref', message: string) {
    super(message);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Totals of one schema so far (a tool list shares one across its tools). */
export interface SchemaTally {
  enumValues: number;
  alternatives: number;
  nodes: number;
  /** Distinct pattern texts (a repeated one compiles once: regex-dfa.ts caches by text). */
  readonly patterns: Set<string>;
}

export const newTally = (): SchemaTally => ({ enumValues: 0, alternatives: 0, nodes: 0, patterns: new Set() });

/**
 * Throws SchemaTooCostly when `schema` (added to `tally`, for several schemas that decode as one
 * grammar) passes a limit of `budget`, or holds a $ref cycle that writes nothing.
 */
export function checkSchemaBudget(schema: unknown, budget: SchemaBudget = SCHEMA_BUDGET, tally: SchemaTally = newTally()): void {
  const stack: { v: unknown; d: number }[] = [{ v: schema, d: 1 }];
  let hasRef = false;
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (++tally.nodes > budget.nodes) throw new SchemaTooCostly('nodes', `the schema has more than ${budget.nodes} JSON values (limit nodes ${budget.nodes})`);
    if (typeof v !== 'object' || v === null) continue;
    if (d > budget.depth) throw new SchemaTooCostly('depth', `the schema nests deeper than ${budget.depth} levels (limit depth ${budget.depth})`);
    if (Array.isArray(v)) {
      for (const x of v) stack.push({ v: x, d: d + 1 });
      continue;
    }
    const o = v as Obj;
    if (Array.isArray(o['enum'])) tally.enumValues += o['enum'].length;
    if ('const' in o) tally.enumValues += 1;
    if (tally.enumValues > budget.enumValues) throw new SchemaTooCostly('enumValues', `the schema has more than ${budget.enumValues} enum values in all (limit enumValues ${budget.enumValues})`);
    for (const k of ['anyOf', 'oneOf', 'allOf']) {
      const a = o[k];
      if (Array.isArray(a)) tally.alternatives += a.length;
    }
    if (tally.alternatives > budget.alternatives) throw new SchemaTooCostly('alternatives', `the schema has more than ${budget.alternatives} anyOf/oneOf/allOf branches in all (limit alternatives ${budget.alternatives})`);
    if (typeof o['pattern'] === 'string') {
      tally.patterns.add(o['pattern']);
      if (tally.patterns.size > budget.patterns) throw new SchemaTooCostly('patterns', `the schema has more than ${budget.patterns} distinct pattern regexes (limit patterns ${budget.patterns})`);
    }
    if (typeof o['$ref'] === 'string') hasRef = true;
    for (const k in o) stack.push({ v: o[k], d: d + 1 });
  }
  if (hasRef) checkRefCycles(schema);
}

/** `#/a/b` → the value it points at in root (undefined when it points nowhere or is not local). */
function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(1).split('/').filter((p) => p !== '')) {
    let part: string;
    try { part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~'); } catch { return undefined; }
    if (!isObj(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/**
 * The schemas reached from `s` without writing a byte: its $ref target and its anyOf/oneOf/allOf
 * branches. A cycle of these edges is left recursion.
 */
function unguarded(root: unknown, s: Obj): Obj[] {
  const out: Obj[] = [];
  if (typeof s['$ref'] === 'string') {
    const t = resolvePointer(root, s['$ref']);
    if (isObj(t)) out.push(t);
  }
  for (const k of ['anyOf', 'oneOf', 'allOf']) {
    const a = s[k];
    if (Array.isArray(a)) for (const x of a) if (isObj(x)) out.push(x);
  }
  return out;
}

function checkRefCycles(root: unknown): void {
  // Every object of the schema is a possible start (a $defs entry, a property's schema...);
  // three-colour DFS, iterative. 1: on the current path, 2: done.
  const colour = new Map<Obj, 1 | 2>();
  const all: Obj[] = [];
  const walk: unknown[] = [root];
  while (walk.length > 0) {
    const v = walk.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) { for (const x of v) walk.push(x); continue; }
    all.push(v as Obj);
    for (const k in v as Obj) walk.push((v as Obj)[k]);
  }
  for (const start of all) {
    if (colour.has(start)) continue;
    const path: { s: Obj; next: Obj[]; i: number }[] = [{ s: start, next: unguarded(root, start), i: 0 }];
    colour.set(start, 1);
    while (path.length > 0) {
      const top = path[path.length - 1]!;
      if (top.i >= top.next.length) {
        colour.set(top.s, 2);
        path.pop();
        continue;
      }
      const n = top.next[top.i++]!;
      const c = colour.get(n);
      if (c === 1) {
        const ref = typeof top.s['$ref'] === 'string' ? ` ($ref ${String(top.s['$ref']).slice(0, 100)})` : '';
        throw new SchemaTooCostly('$ref', `the schema refers back to itself without writing anything${ref}: no JSON value ends that recursion; recurse through properties or items instead`);
      }
      if (c === undefined) {
        colour.set(n, 1);
        path.push({ s: n, next: unguarded(root, n), i: 0 });
      }
    }
  }
}
