// JSON Schema → grammar. Covers what structured-output schemas use in practice (OpenAI strict
// mode, zod/pydantic output): type (incl. type arrays), properties/required/additionalProperties,
// items/minItems/maxItems, minLength/maxLength, enum, const, anyOf/oneOf, allOf (merged), local
// $ref (#/$defs/…, #/definitions/…, recursion allowed). Keywords outside that list do not
// constrain generation (the node still keeps its type); callers validate the result with ajv.

import { HearthError } from '../../errors/index.ts';
import { ANY, alt, lit } from './grammar-node.ts';
import { INF, buildPatternTable, remAt } from './pattern-table.ts';
import { dfaFor } from './regex-dfa.ts';
import { RegexRefused } from './regex-parse.ts';
import type { GNode, PropNode } from './grammar-node.ts';

type Schema = Record<string, unknown>;

const utf8 = new TextEncoder();
/** Keys are tracked in a 31-bit mask; schemas beyond that keep their first 31 (required first). */
const MAX_PROPS = 31;

const isObj = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : d);

export function compileSchema(root: unknown, where: string): GNode {
  const cache = new Map<unknown, GNode>();
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
        if (s.pattern === undefined) return { k: 'str', min, max };
        if (typeof s.pattern !== 'string') return bad('pattern must be a string');
        return patternString(s.pattern, min, max);
      }
      case 'number': return { k: 'num', int: false };
      case 'integer': return { k: 'num', int: true };
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
  const patternString = (pattern: string, min: number, max: number): GNode => {
    try {
      const table = buildPatternTable(dfaFor(pattern), min, max, `minLength ${min}, maxLength ${max}`);
      if (remAt(table, 0, 0) >= INF) return bad(`no string of ${min}…${max} characters matches pattern ${JSON.stringify(pattern)}`);
      return { k: 'pstr', table };
    } catch (e) {
      if (e instanceof RegexRefused) return bad(`pattern: ${e.message}`, 'pattern');
      throw e;
    }
  };

  const objectNode = (s: Schema): GNode => {
    const props = isObj(s.properties) ? s.properties : {};
    const required = new Set(Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === 'string') : []);
    const names = [...new Set([...required, ...Object.keys(props)])];
    // Required keys first, so capping at MAX_PROPS never drops one.
    names.sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
    if (names.filter((n) => required.has(n)).length > MAX_PROPS) return bad(`more than ${MAX_PROPS} required properties`);
    const list: PropNode[] = names.slice(0, MAX_PROPS).map((name) => ({
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

  return compile(root);
}
