// The grammar a constraint walks: JSON Schema compiled to these nodes (schema-compile.ts), plus
// the few shapes tool-call syntaxes need around the JSON (literals, sequences, repeats, free text
// until a trigger). Literal bytes are stored ready to match against token bytes.

import { BoundedNumFrame } from './num-frame.ts';
import type { BoundedNum } from './num-frame.ts';
import { remAt } from './pattern-table.ts';
import type { PatternTable } from './pattern-table.ts';

export interface PropNode {
  readonly name: string;
  /** `"name"` as JSON bytes: what a key must spell exactly. */
  readonly key: Uint8Array;
  readonly node: GNode;
  readonly required: boolean;
}

export type GNode =
  | { readonly k: 'any' }
  | { readonly k: 'obj'; readonly props: readonly PropNode[]; readonly extra: GNode | null }
  | { readonly k: 'arr'; readonly items: GNode; readonly min: number; readonly max: number }
  | { readonly k: 'str'; readonly min: number; readonly max: number }
  /** A string whose value matches a pattern (or format), with its length bounds. */
  | { readonly k: 'pstr'; readonly table: PatternTable }
  | { readonly k: 'num'; readonly int: boolean }
  /** A number with bounds and/or multipleOf (num-frame.ts). */
  | BoundedNum
  | { readonly k: 'lit'; readonly options: readonly Uint8Array[] }
  | { readonly k: 'alt'; readonly options: readonly GNode[] }
  | { readonly k: 'seq'; readonly items: readonly GNode[] }
  /** item (sep item)*; min 0 means the repeat may also be empty, and then every item is preceded by sep. */
  | { readonly k: 'rep'; readonly item: GNode; readonly sep: Uint8Array; readonly min: number }
  /** Free text (any bytes, may end anywhere) until `trigger` appears, then `then`. */
  | { readonly k: 'text'; readonly trigger: Uint8Array; readonly then: GNode }
  | { readonly k: 'ref'; readonly target: () => GNode };

const utf8 = new TextEncoder();

export const lit = (...texts: string[]): GNode => ({ k: 'lit', options: texts.map((t) => utf8.encode(t)) });
export const seq = (...items: GNode[]): GNode => (items.length === 1 ? items[0]! : { k: 'seq', items });
export const alt = (options: GNode[]): GNode => (options.length === 1 ? options[0]! : { k: 'alt', options });
export const ANY: GNode = { k: 'any' };
export const ANY_OBJECT: GNode = { k: 'obj', props: [], extra: ANY };
export const STRING: GNode = { k: 'str', min: 0, max: Infinity };

const MEMO = new WeakMap<GNode, number>();

const BOOL_NULL = lit('true', 'false', 'null');

const ANY_OPTIONS: readonly GNode[] = [ANY_OBJECT, { k: 'arr', items: ANY, min: 0, max: Infinity }, STRING, { k: 'num', int: false }, BOOL_NULL];

/** What `any` stands for (one shared list, so minLen's memo keeps hitting). */
export function anyOptions(): readonly GNode[] {
  return ANY_OPTIONS;
}

/**
 * Fewest bytes any value of the node can take. Exact for the grammar as generated (no
 * whitespace), so the budget logic can always find a byte that brings completion one closer.
 */
export function minLen(node: GNode, memo: WeakMap<GNode, number> = MEMO): number {
  const m = memo.get(node);
  if (m !== undefined) return m;
  memo.set(node, Infinity); // cycle guard: a recursive path is never the shortest
  let v: number;
  switch (node.k) {
    case 'any': v = 1; break;
    case 'obj': {
      const req = node.props.filter((p) => p.required);
      v = 2 + req.reduce((s, p) => s + p.key.length + 1 + minLen(p.node, memo), 0) + Math.max(0, req.length - 1);
      break;
    }
    case 'arr': v = node.min === 0 ? 2 : 2 + node.min * minLen(node.items, memo) + node.min - 1; break;
    case 'str': v = 2 + node.min; break;
    case 'pstr': v = 2 + remAt(node.table, 0, 0); break;
    case 'num': v = 1; break;
    case 'bnum': v = BoundedNumFrame.start(null, node).need(); break;
    case 'lit': v = Math.min(...node.options.map((o) => o.length)); break;
    case 'alt': v = Math.min(...node.options.map((o) => minLen(o, memo))); break;
    case 'seq': v = node.items.reduce((s, n) => s + minLen(n, memo), 0); break;
    case 'rep': v = node.min === 0 ? 0 : node.min * minLen(node.item, memo) + (node.min - 1) * node.sep.length; break;
    case 'text': v = 0; break;
    case 'ref': v = minLen(node.target(), memo); break;
  }
  memo.set(node, v);
  return v;
}
