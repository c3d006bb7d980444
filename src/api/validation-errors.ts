import type { ErrorObject } from 'ajv';
import { HearthError } from '../errors/index.ts';

// Turns ajv's errors for a request body into one HearthError worded the way OpenAI words its own
// 400s ("Invalid type for 'messages[0].content': ...", "Missing required parameter: 'model'."), with
// `param` in OpenAI's dotted/bracket form so SDKs and users see which field is wrong.

/** "/messages/0/content" → "messages[0].content" (JSON pointer, RFC 6901, unescaped). */
export function pointerToParam(pointer: string): string {
  if (pointer === '') return '';
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out;
}

function valueAt(data: unknown, pointer: string): unknown {
  let cur = data;
  for (const raw of pointer.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    cur = Object.hasOwn(cur, seg) ? (cur as Record<string, unknown>)[seg] : undefined;
  }
  return cur;
}

/** JSON type name of a value, as OpenAI's messages say it ("an integer", "a string"). */
export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a decimal';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

function short(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  } catch {
    // JSON.stringify recurses: a value nested thousands deep overflowed the stack inside the error
    // handler itself, which then answered a bare 500 (issue 19, item 8).
    s = describeType(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Builds the 400 for a body that failed its schema. `errors` come from ajv (allErrors: false). */
export function validationError(errors: readonly ErrorObject[], body: unknown, root = ''): HearthError {
  const first = pickError(errors);
  if (first === undefined) return new HearthError('HEARTH_ERR_INVALID_REQUEST', ['Invalid request body.']);
  const at = first.instancePath;
  // logit_bias maps token ids to biases: a bad entry is the parameter's fault, not an "index".
  let param = at.startsWith('/logit_bias/') ? 'logit_bias' : pointerToParam(at);
  if (root !== '') param = param === '' ? root : `${root}.${param}`;
  const value = valueAt(body, at);
  const q = param === '' ? 'body' : `'${param}'`;
  let message: string;
  switch (first.keyword) {
    case 'required': {
      const missing = String((first.params as { missingProperty: string }).missingProperty);
      param = param === '' ? missing : `${param}.${missing}`;
      message = `Missing required parameter: '${param}'.`;
      break;
    }
    case 'type':
    case 'anyOf': {
      // Every type a branch accepted at this path: "expected one of null or a number".
      const types = new Set<string>();
      for (const e of errors) {
        if (e.instancePath === at && e.keyword === 'type') for (const t of String((e.params as { type: string | string[] }).type).split(',')) types.add(t);
        if (e.instancePath === at && e.keyword === 'enum') types.add('one of the allowed values');
      }
      const want = types.size === 0 ? 'a different shape' : [...types].join(' or ');
      message = `Invalid type for ${q}: expected ${want}, but got ${describeType(value)} instead.`;
      break;
    }
    case 'enum':
    case 'const': {
      const allowed = first.keyword === 'enum' ? (first.params as { allowedValues: unknown[] }).allowedValues : [(first.params as { allowedValue: unknown }).allowedValue];
      message = `Invalid value: '${short(value)}'. Supported values are: ${allowed.map((a) => `'${String(a)}'`).join(', ')}.`;
      break;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const p = first.params as { comparison: string; limit: number };
      message = `Invalid ${q}: expected a value ${p.comparison} ${p.limit}, but got ${short(value)} instead.`;
      break;
    }
    case 'minItems':
      message = `Invalid ${q}: expected an array with at least ${(first.params as { limit: number }).limit} item(s).`;
      break;
    case 'maxItems':
      message = `Invalid ${q}: expected an array with at most ${(first.params as { limit: number }).limit} items.`;
      break;
    case 'maxProperties':
      message = `Invalid ${q}: expected an object with at most ${(first.params as { limit: number }).limit} entries, but got ${value !== null && typeof value === 'object' ? Object.keys(value).length : 0}.`;
      break;
    case 'maxLength':
    case 'minLength':
      message = `Invalid ${q}: string ${first.message ?? 'has the wrong length'}.`;
      break;
    case 'pattern':
      message = `Invalid ${q}: '${short(value)}' does not match pattern ${(first.params as { pattern: string }).pattern}.`;
      break;
    default:
      message = `Invalid ${q}: ${first.message ?? 'does not match the schema'}.`;
  }
  return new HearthError('HEARTH_ERR_INVALID_REQUEST', [message], param === '' ? {} : { param });
}

/**
 * ajv (allErrors:false) lists the failures of each anyOf branch, then the anyOf itself. The most
 * useful one is the deepest: a wrong field inside a message says more than "messages[0] matches no
 * branch". Among equally deep ones, prefer 'required', then the anyOf summary.
 */
function pickError(errors: readonly ErrorObject[]): ErrorObject | undefined {
  let best: ErrorObject | undefined;
  let bestDepth = -1;
  for (const e of errors) {
    const depth = e.instancePath === '' ? 0 : e.instancePath.split('/').length;
    const rank = depth * 4 + (e.keyword === 'required' ? 2 : e.keyword === 'anyOf' ? 1 : e.keyword === 'type' ? 0 : 3);
    if (rank > bestDepth) {
      best = e;
      bestDepth = rank;
    }
  }
  return best;
}
