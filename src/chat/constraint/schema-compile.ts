// JSON Schema → grammar, as OpenAI's structured outputs define it and beyond: type (incl. type
// arrays), properties/required/additionalProperties, items/minItems/maxItems,
// minLength/maxLength, pattern (a linear-time automaton, regex-dfa.ts), format (formats.ts),
// minimum/maximum/exclusive bounds and whole multipleOf (num-frame.ts), enum, const, anyOf/oneOf,
// allOf (merged), local $ref (#/$defs/…, #/definitions/…, recursion allowed). Validation keywords
// outside that list are refused with a 400 naming them (REFUSED below), never left to a check
// after generating; annotations are ignored.

import { HearthError } from '../../errors/index.ts';
import { ANY, alt, lit } from './grammar-node.ts';
import { FORMATS } from './formats.ts';
import { BoundedNumFrame, FRACTION_DIGITS } from './num-frame.ts';
import type { BoundedNum } from './num-frame.ts';
import { INF, patternTable, remAt } from './pattern-table.ts';
import { dfaFor } from './regex-dfa.ts';
import { RegexRefused } from './regex-parse.ts';
import { SchemaTooCostly, checkSchemaBudget } from './schema-budget.ts';
import type { GNode, PropNode } from './grammar-node.ts';

type Schema = Record<string, unknown>;

const utf8 = new TextEncoder();
/** Keys are tracked in a 31-bit mask; schemas beyond that keep every required key and the first optional ones. */
const MAX_PROPS = 31;

const isObj = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : d);

/**
 * Validation keywords hearth cannot enforce while decoding: a schema using one is refused up
 * front (400 naming it) rather than answered with output that may not validate. Annotations
 * (title, description, default, examples, $comment, …) and unknown keywords are ignored, as ajv
 * ignores them.
 */
const REFUSED = [
  'not', 'if', 'then', 'else', 'patternProperties', 'propertyNames', 'dependentRequired', 'dependentSchemas', 'dependencies',
  'minProperties', 'maxProperties', 'uniqueItems', 'contains', 'minContains', 'maxContains', 'prefixItems', 'additionalItems',
  'unevaluatedProperties', 'unevaluatedItems', '$dynamicRef', '$recursiveRef', 'contentSchema',
] as const;
const HINTS: Partial<Record<string, string>> = {
  patternProperties: 'properties',
  prefixItems: 'an object with named properties',
  not: 'enum or anyOf',
  if: 'anyOf',
};

/** Bound magnitudes (units) are clamped here: hearth writes at most 15 significant digits. */
const LIMIT = 1e15;

/**
 * x · 10^frac rounded up or down to an integer, exactly: from x's shortest decimal spelling (what
 * the user wrote), so minimum 0.1 allows 0.1 although the double 0.1 is a little above it.
 * Clamped to ±LIMIT.
 */
export function units(x: number, frac: number, dir: 'ceil' | 'floor'): number {
  const neg = x < 0;
  const [mant = '0', exp = '0'] = String(Math.abs(x)).split('e');
  const [ip = '0', fp = ''] = mant.split('.');
  const digits = BigInt(ip + fp);
  const shift = frac - fp.length + Number(exp);
  let q: bigint;
  let inexact = false;
  if (shift >= 0) q = digits * 10n ** BigInt(shift);
  else {
    const d = 10n ** BigInt(-shift);
    q = digits / d;
    inexact = digits % d !== 0n;
  }
  // |x|·10^frac = q (+ a fraction when inexact); round toward the requested side of x itself.
  let v: bigint;
  if (!neg) v = dir === 'ceil' && inexact ? q + 1n : q;
  else v = dir === 'floor' && inexact ? -q - 1n : -q;
  const L = BigInt(LIMIT);
  return Number(v > L ? L : v < -L ? -L : v);
}

export function compileSchema(root: unknown, where: string): GNode {
  const cache = new Map<unknown, GNode>();
  // `keyword`: the schema keyword at fault (the message names it; param stays the schema's path).
  const bad = (msg: string, _keyword?: string): never => {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${where}: ${msg}`], { param: where });
  };

  const resolve = (ref: string): unknown => {
    if (!ref.startsWith('#')) return bad(`only local $ref is supported, got ${ref}`);
    let cur: unknown = root;
    for (const raw of ref.slice(1).split('/').filter((p) => p !== '')) {
      const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isObj(cur) || !(part in cur)) return bad(`$ref ${ref} points nowhere`);
      cur = cur[part];
    }
    return cur;
  };

  const compile = (s: unknown): GNode => {
    if (s === true || s === undefined) return ANY;
    if (s === false) return bad('schema `false` admits no value');
    if (!isObj(s)) return bad('a schema must be an object or a boolean');
    const hit = cache.get(s);
    if (hit) return hit;
    let target: GNode | undefined;
    // Registered before compiling children so a recursive $ref finds it.
    const ref: GNode = { k: 'ref', target: () => target! };
    cache.set(s, ref);
    target = build(s);
    cache.set(s, target);
    return target;
  };

  const build = (s: Schema): GNode => {
    for (const k of REFUSED) {
      if (s[k] === undefined) continue;
      // No-op spellings stay accepted: they constrain nothing.
      if (k === 'uniqueItems' && s[k] === false) continue;
      if (k === 'additionalItems' && !Array.isArray(s.items)) continue;
      if ((k === 'minProperties' && s[k] === 0)) continue;
      return bad(`keyword ${k} cannot be enforced while decoding; remove it or express it with ${HINTS[k] ?? 'the supported keywords'}`, k);
    }
    if (Array.isArray(s.items)) return bad('keyword items as an array (tuple form) cannot be enforced while decoding', 'items');
    if (typeof s.$ref === 'string') {
      const r = resolve(s.$ref);
      return { k: 'ref', target: () => compile(r) };
    }
    if ('const' in s) return lit(JSON.stringify(s.const));
    if (Array.isArray(s.enum)) {
      if (s.enum.length === 0) return bad('enum is empty');
      return lit(...s.enum.map((v) => JSON.stringify(v)));
    }
    const union = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : null;
    if (union) {
      if (union.length === 0) return bad('anyOf/oneOf is empty');
      return alt(union.map(compile));
    }
    if (Array.isArray(s.allOf)) {
      const { allOf, ...rest } = s;
      return compile(Object.assign({}, rest, ...(allOf as unknown[]).filter(isObj)));
    }
    let types: unknown[];
    if (Array.isArray(s.type)) types = s.type;
    else if (typeof s.type === 'string') types = [s.type];
    else if (isObj(s.properties) || Array.isArray(s.required) || 'additionalProperties' in s) types = ['object'];
    else if ('items' in s || 'minItems' in s || 'maxItems' in s) types = ['array'];
    else return ANY;
    if (types.length === 0) return bad('type is an empty list');
    return alt(types.map((t) => ofType(s, t)));
  };

  const ofType = (s: Schema, t: unknown): GNode => {
    switch (t) {
      case 'string': {
        const min = num(s.minLength, 0);
        const max = num(s.maxLength, Infinity);
        if (min > max) return bad('minLength > maxLength');
        if (s.format !== undefined) {
          const f = typeof s.format === 'string' ? FORMATS[s.format] : undefined;
          if (f === undefined) return bad(`format ${JSON.stringify(s.format)} cannot be enforced (hearth enforces ${Object.keys(FORMATS).join(', ')})`, 'format');
          if (s.pattern !== undefined) return bad('format together with pattern cannot be enforced; use one of them', 'format');
          return patternString(f.pattern, min, Math.min(max, f.maxLength), true);
        }
        if (s.pattern === undefined) return { k: 'str', min, max };
        if (typeof s.pattern !== 'string') return bad('pattern must be a string');
        return patternString(s.pattern, min, max);
      }
      case 'number': return numberNode(s, false);
      case 'integer': return numberNode(s, true);
      case 'boolean': return lit('true', 'false');
      case 'null': return lit('null');
      case 'array': {
        const min = num(s.minItems, 0);
        const max = num(s.maxItems, Infinity);
        if (min > max) return bad('minItems > maxItems');
        return { k: 'arr', items: 'items' in s ? compile(s.items) : ANY, min, max };
      }
      case 'object': return objectNode(s);
      default: return bad(`unknown type ${JSON.stringify(t)}`);
    }
  };

  /** A string matching `pattern` (JSON Schema: unanchored, ECMA-262 with `u`); 400 if it cannot be enforced. */
  const patternString = (pattern: string, min: number, max: number, builtIn = false): GNode => {
    try {
      const table = patternTable(pattern, dfaFor(pattern, builtIn), min, max, `minLength ${min}, maxLength ${max}`);
      if (remAt(table, 0, 0) >= INF) return bad(`no string of ${min}…${max} characters matches pattern ${JSON.stringify(pattern)}`);
      return { k: 'pstr', table };
    } catch (e) {
      if (e instanceof RegexRefused) return bad(`pattern: ${e.message}`, 'pattern');
      throw e;
    }
  };

  /** number/integer: plain unless a bound or multipleOf asks for the digit-by-digit frame. */
  const numberNode = (s: Schema, int: boolean): GNode => {
    const has = (k: string): boolean => s[k] !== undefined;
    if (!has('minimum') && !has('maximum') && !has('exclusiveMinimum') && !has('exclusiveMaximum') && !has('multipleOf')) return { k: 'num', int };
    const frac = int ? 0 : FRACTION_DIGITS;
    const finite = (k: string): number | undefined => {
      const v = s[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`${k} must be a finite number`, k);
      return v;
    };
    let lo = -LIMIT;
    let hi = LIMIT;
    const min = finite('minimum');
    const max = finite('maximum');
    const xmin = finite('exclusiveMinimum');
    const xmax = finite('exclusiveMaximum');
    if (min !== undefined) lo = Math.max(lo, units(min, frac, 'ceil'));
    if (xmin !== undefined) lo = Math.max(lo, units(xmin, frac, 'floor') + 1);
    if (max !== undefined) hi = Math.min(hi, units(max, frac, 'floor'));
    if (xmax !== undefined) hi = Math.min(hi, units(xmax, frac, 'ceil') - 1);
    let step = 1;
    const mult = finite('multipleOf');
    if (mult !== undefined) {
      // ajv checks value / multipleOf for an integer in floating point, which a decimal multiple
      // of 0.1 can fail (0.3 / 0.1 = 2.9999…): only whole multipleOf can be promised.
      if (!(mult > 0) || !Number.isInteger(mult)) return bad(`multipleOf ${mult} cannot be enforced (hearth enforces whole-number multipleOf)`, 'multipleOf');
      if (mult * 10 ** frac > LIMIT) return bad(`multipleOf ${mult} is too large`, 'multipleOf');
      step = mult * 10 ** frac;
    }
    const node: BoundedNum = { k: 'bnum', frac, lo, hi, step };
    if (BoundedNumFrame.start(null, node).need() === Infinity) return bad(`no ${int ? 'integer' : 'number'} hearth can write satisfies minimum/maximum/exclusiveMinimum/exclusiveMaximum/multipleOf (at most 15 significant digits${int ? '' : `, ${frac} after the point`})`, 'minimum');
    return node;
  };

  const objectNode = (s: Schema): GNode => {
    const props = isObj(s.properties) ? s.properties : {};
    const required = new Set(Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === 'string') : []);
    // Keys are written in the schema's order (as OpenAI's structured outputs and llama.cpp's
    // grammars write them): declared properties, then required names declared nowhere else.
    const all = [...new Set([...Object.keys(props), ...required])];
    if (all.filter((n) => required.has(n)).length > MAX_PROPS) return bad(`more than ${MAX_PROPS} required properties`);
    // Capping at MAX_PROPS drops optional keys from the end, never a required one.
    let optional = MAX_PROPS - all.filter((n) => required.has(n)).length;
    const names = all.filter((n) => required.has(n) || optional-- > 0);
    const list: PropNode[] = names.map((name) => ({
      name,
      key: utf8.encode(JSON.stringify(name)),
      node: compile(props[name]),
      required: required.has(name),
    }));
    const ap = s.additionalProperties;
    // With declared properties, extra keys are never needed: writing only declared ones keeps
    // every output valid whatever additionalProperties says.
    const extra = list.length > 0 || ap === false ? null : isObj(ap) ? compile(ap) : ANY;
    return { k: 'obj', props: list, extra };
  };

  // Bounded before compiling: a $ref cycle that writes nothing would recurse without end below.
  try {
    checkSchemaBudget(root);
  } catch (e) {
    if (e instanceof SchemaTooCostly) return bad(e.message, e.limit);
    throw e;
  }
  return compile(root);
}
