import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { checkSchemaBudget, linearRegExp, type SchemaTally } from '../chat/constraint/index.ts';

// Compiles the JSON Schemas users send (tool parameters, response_format.json_schema.schema) so an
// invalid one is a 400 up front and the constrained output can be checked before it is returned.
// Agent loops resend the same tools every turn, so compiled validators are cached by the schema's
// JSON text (LRU). Ajv also caches by schema *object*, which would grow with every request body:
// removeSchema() drops that entry once compiled. No loadSchema is set, so a remote $ref is an
// error, never a network fetch. Patterns run on hearth's own automaton (linear time), never on
// JS RegExp, which backtracks (issue 8: one pattern froze the event loop for 50 s).

const addFormats = addFormatsModule as unknown as (a: Ajv | Ajv2020) => void;
const CACHE_MAX = 256;
const cache = new Map<string, ValidateFunction>();
let draft7: Ajv | undefined;
let draft2020: Ajv2020 | undefined;

// `optimize: false`: ajv's code optimizer is superlinear in the schema's size (a 1,000-property
// tool: 2.9 s with it, 0.33 s without) and only trims redundant checks. `loopEnum`: an enum of more
// values is checked in a loop rather than one `===` each in generated code. Both keep the event
// loop free while a request's schemas compile (issue 19).
const AJV_COST = { loopEnum: 64 } as const;

function ajvFor(schema: Record<string, unknown>): Ajv | Ajv2020 {
  const dialect = typeof schema['$schema'] === 'string' ? schema['$schema'] : '';
  if (dialect.includes('2020-12') || dialect.includes('2019-09')) {
    if (draft2020 === undefined) {
      draft2020 = new Ajv2020({ strict: false, allErrors: false, validateFormats: true, ...AJV_COST, code: { regExp: linearRegExp, optimize: false } });
      addFormats(draft2020);
    }
    return draft2020;
  }
  if (draft7 === undefined) {
    draft7 = new Ajv({ strict: false, allErrors: false, validateFormats: true, ...AJV_COST, code: { regExp: linearRegExp, optimize: false } });
    addFormats(draft7);
  }
  return draft7;
}

/**
 * Compiles a user schema; throws Error with ajv's reason when it is not a valid JSON Schema, or
 * with the limit it passes when it would cost too much to compile or decode (schema-budget.ts:
 * checked first, even on a cache hit, since `tally` sums the schemas of one request).
 */
export function compileUserSchema(schema: Record<string, unknown>, tally?: SchemaTally): ValidateFunction {
  checkSchemaBudget(schema, undefined, tally);
  const key = JSON.stringify(schema);
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const ajv = ajvFor(schema);
  // A private copy: ajv keys its cache by object identity and may keep a reference to it.
  const copy = JSON.parse(key) as Record<string, unknown>;
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(copy);
  } finally {
    try {
      ajv.removeSchema(copy);
    } catch {
      // nothing was added
    }
  }
  cache.set(key, validate);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
  return validate;
}

/**
 * A user schema checked now as cheaply as it can be (the budget, ajv's meta-schema, $refs local
 * and resolvable: what compiling would refuse) and compiled only when first used. Tools an agent
 * sends with tool_choice auto are never validated against (their calls are not constrained), and
 * compiling them all cost up to a second of event loop for a big tool set (issue 19).
 */
export function checkUserSchema(schema: Record<string, unknown>, tally?: SchemaTally): ValidateFunction {
  checkSchemaBudget(schema, undefined, tally);
  const key = JSON.stringify(schema);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const ajv = ajvFor(schema);
  if (ajv.validateSchema(schema) !== true) throw new Error(ajv.errorsText(ajv.errors, { dataVar: 'schema' }));
  const ref = unresolvedRef(schema);
  if (ref !== null) throw new Error(`can't resolve reference ${ref.slice(0, 200)} (only local $ref to a place in the schema is supported)`);
  const pattern = badPattern(schema);
  if (pattern !== null) throw new Error(`pattern ${JSON.stringify(pattern.slice(0, 200))} is not a valid regular expression`);
  let compiled: ValidateFunction | undefined;
  const lazy = ((data: unknown) => {
    compiled ??= compileUserSchema(schema);
    const ok = compiled(data);
    lazy.errors = compiled.errors ?? null;
    return ok;
  }) as ValidateFunction;
  return lazy;
}

/** Walks every object of a schema (iteratively: schemas may nest deep) and returns the first
 *  non-null answer of `find`, else null. */
function firstInSchema(root: Record<string, unknown>, find: (o: Record<string, unknown>) => string | null): string | null {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    const found = find(o);
    if (found !== null) return found;
    for (const k in o) stack.push(o[k]);
  }
  return null;
}

const invalidRegex = (p: unknown): boolean => {
  if (typeof p !== 'string') return false;
  try {
    new RegExp(p, 'u');
    return false;
  } catch {
    return true;
  }
};

/** The first `pattern` or `patternProperties` key that is not a valid (unicode) regular
 *  expression, else null: compiling would refuse it, and the check must not wait for that. */
function badPattern(root: Record<string, unknown>): string | null {
  return firstInSchema(root, (o) => {
    if (invalidRegex(o['pattern'])) return o['pattern'] as string;
    const pp = o['patternProperties'];
    if (typeof pp === 'object' && pp !== null && !Array.isArray(pp)) for (const k of Object.keys(pp)) if (invalidRegex(k)) return k;
    return null;
  });
}

/** The first $ref that is not local or points nowhere, else null. */
function unresolvedRef(root: Record<string, unknown>): string | null {
  return firstInSchema(root, (o) => {
    const ref = o['$ref'];
    return typeof ref === 'string' && !refResolves(root, ref) ? ref : null;
  });
}

function refResolves(root: unknown, ref: string): boolean {
  if (!ref.startsWith('#')) return false;
  let cur: unknown = root;
  for (const raw of ref.slice(1).split('/').filter((p) => p !== '')) {
    let part: string;
    try {
      part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    } catch {
      return false;
    }
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, part)) return false;
    cur = (cur as Record<string, unknown>)[part];
  }
  return true;
}

/** First validation error of `validate` as one readable line. */
export function describeSchemaErrors(validate: ValidateFunction): string {
  const e = validate.errors?.[0];
  if (e === undefined) return 'does not match the schema';
  return `${e.instancePath === '' ? 'value' : e.instancePath} ${e.message ?? 'is invalid'}`;
}
