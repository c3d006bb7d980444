// A byte-level pushdown matcher over GNode grammars. A matcher state is a list of alternatives;
// each alternative is the top frame of an immutable stack (frames point at their parent), so a
// state is shared, never copied: the vocabulary trie walk keeps one state per depth for free.
// Frames finish eagerly (a closed object pops at once); only numbers and repeats, which cannot
// know they are over, pop when the next byte (or the end) arrives.

import { anyOptions, minLen } from './grammar-node.ts';
import type { GNode, PropNode } from './grammar-node.ts';

import { DONE, Frame, complete } from './frame-base.ts';
import { BoundedNumFrame } from './num-frame.ts';
import { PatStrFrame } from './pattern-frame.ts';

export { DONE, Frame };

/** Frames for the start of node (several when it is a union). */
export function pushNode(node: GNode, parent: Frame | null): Frame[] {
  switch (node.k) {
    case 'any': return anyOptions().flatMap((n) => pushNode(n, parent));
    case 'alt': return node.options.flatMap((n) => pushNode(n, parent));
    case 'ref': return pushNode(node.target(), parent);
    case 'obj': return [new ObjFrame(parent, node, PH.OPEN, 0, -1)];
    case 'arr': return [new ArrFrame(parent, node, PH.OPEN, 0)];
    case 'str': return [new StrFrame(parent, node.min, node.max, false, 0, 0, 0x80, 0xbf, 0, 0)];
    case 'pstr': return [PatStrFrame.start(parent, node.table)];
    case 'bnum': return [BoundedNumFrame.start(parent, node)];
    case 'num': return [new NumFrame(parent, node.int, 0)];
    case 'lit': return [new LitFrame(parent, node.options, node.options.map((_, i) => i), null, 0)];
    case 'seq': return [new SeqFrame(parent, node.items, 0)];
    case 'rep': return [new RepFrame(parent, node, 0, node.min === 0 ? 2 : 0)];
    case 'text': return [new TextFrame(parent, node, 0)];
  }
}

/** A set of byte strings matched together; completes with the id of the option spelled. */
class LitFrame extends Frame {
  constructor(
    parent: Frame | null,
    private readonly opts: readonly Uint8Array[],
    private readonly ids: readonly number[],
    /** Extra bytes the parent needs after each option (keeps rem() exact for object keys). */
    private readonly tails: readonly number[] | null,
    private readonly pos: number,
  ) { super(parent); }

  step(b: number): Frame[] {
    const out: Frame[] = [];
    let opts: Uint8Array[] | null = null;
    let ids: number[] | null = null;
    let tails: number[] | null = null;
    for (let i = 0; i < this.opts.length; i++) {
      const o = this.opts[i]!;
      if (o[this.pos] !== b) continue;
      if (o.length === this.pos + 1) { out.push(complete(this.parent, this.ids[i]!)); continue; }
      (opts ??= []).push(o);
      (ids ??= []).push(this.ids[i]!);
      if (this.tails) (tails ??= []).push(this.tails[i]!);
    }
    if (opts) out.push(new LitFrame(this.parent, opts, ids!, tails, this.pos + 1));
    return out;
  }
  canEnd(): boolean { return false; }
  rem(): number {
    let m = Infinity;
    for (let i = 0; i < this.opts.length; i++) m = Math.min(m, this.opts[i]!.length - this.pos + (this.tails ? this.tails[i]! : 0));
    return m;
  }
}

/** A JSON string: valid UTF-8 only, escapes checked, length in code points per JSON Schema. */
class StrFrame extends Frame {
  constructor(
    parent: Frame | null,
    private readonly min: number,
    private readonly max: number,
    private readonly open: boolean,
    private readonly count: number,
    /** UTF-8 continuation bytes still owed, and the range the next one must fall in. */
    private readonly need: number,
    private readonly lo: number,
    private readonly hi: number,
    /** 0 none, 1 after `\`, 2..5 inside `\u` with esc-2 hex digits read. */
    private readonly esc: number,
    private readonly hex0: number,
  ) { super(parent); }

  private next(count: number, need: number, lo: number, hi: number, esc: number, hex0: number): StrFrame {
    return new StrFrame(this.parent, this.min, this.max, true, count, need, lo, hi, esc, hex0);
  }

  step(b: number): Frame[] {
    if (!this.open) return b === 0x22 ? [this.next(0, 0, 0x80, 0xbf, 0, 0)] : [];
    const c = this.count;
    if (this.esc === 1) {
      if (b === 0x75) return [this.next(c, 0, 0x80, 0xbf, 2, 0)];
      // " \ / b f n r t
      if (b === 0x22 || b === 0x5c || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74) return [this.next(c + 1, 0, 0x80, 0xbf, 0, 0)];
      return [];
    }
    if (this.esc >= 2) {
      const isHex = (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46);
      if (!isHex) return [];
      // \uD800-\uDFFF alone is a lone surrogate: not valid Unicode text, so never start one.
      if (this.esc === 3 && (this.hex0 === 0x64 || this.hex0 === 0x44) && !(b >= 0x30 && b <= 0x37)) return [];
      if (this.esc === 5) return [this.next(c + 1, 0, 0x80, 0xbf, 0, 0)];
      return [this.next(c, 0, 0x80, 0xbf, this.esc + 1, this.esc === 2 ? b : this.hex0)];
    }
    if (this.need > 0) {
      if (b < this.lo || b > this.hi) return [];
      return [this.need === 1 ? this.next(c + 1, 0, 0x80, 0xbf, 0, 0) : this.next(c, this.need - 1, 0x80, 0xbf, 0, 0)];
    }
    if (b === 0x22) return c >= this.min ? [complete(this.parent, 0)] : [];
    if (c >= this.max) return [];
    if (b === 0x5c) return [this.next(c, 0, 0x80, 0xbf, 1, 0)];
    if (b < 0x20) return [];
    if (b < 0x80) return [this.next(c + 1, 0, 0x80, 0xbf, 0, 0)];
    // RFC 3629 table 3-7: well-formed UTF-8 byte sequences.
    if (b >= 0xc2 && b <= 0xdf) return [this.next(c, 1, 0x80, 0xbf, 0, 0)];
    if (b === 0xe0) return [this.next(c, 2, 0xa0, 0xbf, 0, 0)];
    if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) return [this.next(c, 2, 0x80, 0xbf, 0, 0)];
    if (b === 0xed) return [this.next(c, 2, 0x80, 0x9f, 0, 0)];
    if (b === 0xf0) return [this.next(c, 3, 0x90, 0xbf, 0, 0)];
    if (b >= 0xf1 && b <= 0xf3) return [this.next(c, 3, 0x80, 0xbf, 0, 0)];
    if (b === 0xf4) return [this.next(c, 3, 0x80, 0x8f, 0, 0)];
    return [];
  }
  canEnd(): boolean { return false; }
  rem(): number {
    if (!this.open) return 2 + this.min;
    const pending = this.esc === 1 ? 1 : this.esc >= 2 ? 6 - this.esc : this.need;
    const chars = Math.max(0, this.min - this.count - (pending > 0 ? 1 : 0));
    return pending + chars + 1;
  }
  override plainRoom(): number {
    return this.open && this.esc === 0 && this.need === 0 ? this.max - this.count : -1;
  }
}

// Number states: 0 start, 1 after '-', 2 after a leading '0', 3 in int digits, 4 after '.',
// 5 in fraction digits, 6 after 'e', 7 after the exponent sign, 8 in exponent digits.
const NUM_ACCEPT = [false, false, true, true, false, true, false, false, true] as const;

class NumFrame extends Frame {
  constructor(parent: Frame | null, private readonly int: boolean, private readonly st: number) { super(parent); }

  private go(st: number): Frame[] { return [new NumFrame(this.parent, this.int, st)]; }

  step(b: number): Frame[] {
    const digit = b >= 0x30 && b <= 0x39;
    const st = this.st;
    switch (st) {
      case 0:
        if (b === 0x2d) return this.go(1);
        return digit ? this.go(b === 0x30 ? 2 : 3) : [];
      case 1: return digit ? this.go(b === 0x30 ? 2 : 3) : [];
      case 3: if (digit) return this.go(3); break;
      case 4: return digit ? this.go(5) : [];
      case 5: if (digit) return this.go(5); break;
      case 6: if (b === 0x2b || b === 0x2d) return this.go(7); return digit ? this.go(8) : [];
      case 7: return digit ? this.go(8) : [];
      case 8: if (digit) return this.go(8); break;
    }
    if (!this.int && (st === 2 || st === 3) && b === 0x2e) return this.go(4);
    if (!this.int && (st === 2 || st === 3 || st === 5) && (b === 0x65 || b === 0x45)) return this.go(6);
    // Any other byte ends the number; it belongs to whatever holds the number.
    return NUM_ACCEPT[st as 2] ? complete(this.parent, 0).step(b) : [];
  }
  canEnd(): boolean { return NUM_ACCEPT[this.st as 2] && complete(this.parent, 0).canEnd(); }
  rem(): number { return NUM_ACCEPT[this.st as 2] ? 0 : 1; }
}

const PH = { OPEN: 0, FIRST: 1, KEY: 2, COLON: 3, VALUE: 4, AFTER: 5, KEYING: 6 } as const;
type Phase = (typeof PH)[keyof typeof PH];
type ObjNode = Extract<GNode, { k: 'obj' }>;

/**
 * An object. With declared properties only those keys are written (additional properties are
 * allowed by such schemas but never needed), each at most once; `}` waits for every required
 * key. Without properties, keys are free strings and values follow `extra`.
 */
class ObjFrame extends Frame {
  constructor(
    parent: Frame | null,
    private readonly node: ObjNode,
    private readonly ph: Phase,
    /** Bit i set: props[i] was written. */
    private readonly seen: number,
    /** The property whose value comes next (-1: a free key). */
    private readonly cur: number,
  ) { super(parent); }

  private with(ph: Phase, seen = this.seen, cur = this.cur): ObjFrame {
    return new ObjFrame(this.parent, this.node, ph, seen, cur);
  }
  private missingRequired(seen: number): boolean {
    const ps = this.node.props;
    for (let i = 0; i < ps.length; i++) if (ps[i]!.required && (seen & (1 << i)) === 0) return true;
    return false;
  }
  /**
   * Declared keys come in the schema's order: after the last one written (the highest bit of
   * `seen`), any later key up to and including the next required one. A fixed set of required
   * keys is then one forced text, which canonical decoding and jump-forward drafts exploit.
   */
  private mayWrite(i: number): boolean {
    const last = 31 - Math.clz32(this.seen);
    if (i <= last) return false;
    const ps = this.node.props;
    for (let j = last + 1; j < i; j++) if (ps[j]!.required) return false;
    return true;
  }
  private canAddKey(): boolean {
    const ps = this.node.props;
    if (ps.length === 0) return this.node.extra !== null;
    for (let i = 0; i < ps.length; i++) if (this.mayWrite(i)) return true;
    return false;
  }
  private valueNode(): GNode {
    return this.cur < 0 ? this.node.extra! : this.node.props[this.cur]!.node;
  }

  step(b: number): Frame[] {
    switch (this.ph) {
      case PH.OPEN: return b === 0x7b ? [this.with(PH.FIRST)] : [];
      case PH.FIRST:
      case PH.AFTER:
        if (b === 0x7d) return this.missingRequired(this.seen) ? [] : [complete(this.parent, 0)];
        if (this.ph === PH.AFTER) return b === 0x2c && this.canAddKey() ? [this.with(PH.KEY)] : [];
        return b === 0x22 && this.canAddKey() ? this.startKey(b) : [];
      case PH.KEY: return b === 0x22 ? this.startKey(b) : [];
      case PH.COLON: return b === 0x3a ? [this.with(PH.VALUE)] : [];
      case PH.VALUE: {
        const after = this.with(PH.AFTER);
        return pushNode(this.valueNode(), after).flatMap((f) => f.step(b));
      }
      default: return [];
    }
  }

  private startKey(b: number): Frame[] {
    const keying = this.with(PH.KEYING);
    const ps = this.node.props;
    if (ps.length === 0) return new StrFrame(keying, 0, Infinity, false, 0, 0, 0x80, 0xbf, 0, 0).step(b);
    const opts: Uint8Array[] = [];
    const ids: number[] = [];
    const tails: number[] = [];
    for (let i = 0; i < ps.length; i++) {
      if (!this.mayWrite(i)) continue;
      const p: PropNode = ps[i]!;
      opts.push(p.key);
      ids.push(i);
      tails.push(1 + minLen(p.node) + this.afterCost(this.seen | (1 << i)));
    }
    return new LitFrame(keying, opts, ids, tails, 0).step(b);
  }

  override resume(result: number): Frame {
    if (this.ph !== PH.KEYING) return this; // a value finished: this frame already says AFTER
    const cur = this.node.props.length === 0 ? -1 : result;
    return this.with(PH.COLON, cur < 0 ? this.seen : this.seen | (1 << cur), cur);
  }

  /** Bytes to close from AFTER with `seen` written: `,"k":v` per missing required key, then `}`. */
  private afterCost(seen: number): number {
    let n = 1;
    const ps = this.node.props;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]!;
      if (p.required && (seen & (1 << i)) === 0) n += 1 + p.key.length + 1 + minLen(p.node);
    }
    return n;
  }

  canEnd(): boolean { return false; }
  rem(): number {
    switch (this.ph) {
      case PH.OPEN: return minLen(this.node);
      case PH.FIRST: return this.missingRequired(this.seen) ? this.afterCost(this.seen) - 1 : 1;
      case PH.AFTER: return this.afterCost(this.seen);
      case PH.KEY: {
        if (this.missingRequired(this.seen)) return this.afterCost(this.seen) - 1;
        const ps = this.node.props;
        if (ps.length === 0) return 3 + minLen(this.node.extra!) + 1;
        let m = Infinity;
        for (let i = 0; i < ps.length; i++) {
          if (this.mayWrite(i)) m = Math.min(m, ps[i]!.key.length + 1 + minLen(ps[i]!.node));
        }
        return m + 1;
      }
      case PH.COLON: return 1 + minLen(this.valueNode()) + this.afterCost(this.seen);
      case PH.VALUE: return minLen(this.valueNode()) + this.afterCost(this.seen);
      case PH.KEYING: return this.node.props.length === 0 ? 1 + minLen(this.node.extra!) + 1 : 0;
    }
  }
}

type ArrNode = Extract<GNode, { k: 'arr' }>;
// Array phases: 0 before '[', 1 after '[', 2 after ',', 3 after an item.
class ArrFrame extends Frame {
  constructor(parent: Frame | null, private readonly node: ArrNode, private readonly ph: number, private readonly count: number) { super(parent); }

  private item(b: number): Frame[] {
    const after = new ArrFrame(this.parent, this.node, 3, this.count + 1);
    return pushNode(this.node.items, after).flatMap((f) => f.step(b));
  }

  step(b: number): Frame[] {
    switch (this.ph) {
      case 0: return b === 0x5b ? [new ArrFrame(this.parent, this.node, 1, 0)] : [];
      case 1:
        if (b === 0x5d) return this.node.min === 0 ? [complete(this.parent, 0)] : [];
        return this.node.max > 0 ? this.item(b) : [];
      case 2: return this.item(b);
      default:
        if (b === 0x5d) return this.count >= this.node.min ? [complete(this.parent, 0)] : [];
        return b === 0x2c && this.count < this.node.max ? [new ArrFrame(this.parent, this.node, 2, this.count)] : [];
    }
  }
  override resume(): Frame { return this; }
  canEnd(): boolean { return false; }
  rem(): number {
    const ml = minLen(this.node.items);
    const rest = (c: number): number => Math.max(0, this.node.min - c) * (1 + ml) + 1;
    switch (this.ph) {
      case 0: return minLen(this.node);
      case 1: return this.node.min === 0 ? 1 : this.node.min * ml + this.node.min;
      case 2: return ml + rest(this.count + 1);
      default: return rest(this.count);
    }
  }
}

class SeqFrame extends Frame {
  constructor(parent: Frame | null, private readonly items: readonly GNode[], private readonly i: number) { super(parent); }
  step(b: number): Frame[] {
    const next = new SeqFrame(this.parent, this.items, this.i + 1);
    return pushNode(this.items[this.i]!, next).flatMap((f) => f.step(b));
  }
  override resume(): Frame {
    return this.i >= this.items.length ? complete(this.parent, 0) : this;
  }
  canEnd(): boolean { return false; }
  rem(): number {
    let n = 0;
    for (let j = this.i; j < this.items.length; j++) n += minLen(this.items[j]!);
    return n;
  }
}

const SEP_DONE = -7;
type RepNode = Extract<GNode, { k: 'rep' }>;

// Repeat phases: 0 an item must come next, 1 an item is being read (this frame is its parent),
// 2 an item was just written (or the repeat may be empty): a separator or the end, 3 a separator
// is being read (an item must follow it).
class RepFrame extends Frame {
  constructor(parent: Frame | null, private readonly node: RepNode, private readonly count: number, private readonly ph: 0 | 1 | 2 | 3) { super(parent); }

  step(b: number): Frame[] {
    if (this.ph === 0) {
      const reading = new RepFrame(this.parent, this.node, this.count, 1);
      return pushNode(this.node.item, reading).flatMap((f) => f.step(b));
    }
    if (this.ph !== 2) return [];
    const sepParent = new RepFrame(this.parent, this.node, this.count, 3);
    const out = new LitFrame(sepParent, [this.node.sep], [SEP_DONE], null, 0).step(b);
    if (this.count >= this.node.min) out.push(...complete(this.parent, 0).step(b));
    return out;
  }
  override resume(result: number): Frame {
    if (result === SEP_DONE) return new RepFrame(this.parent, this.node, this.count, 0);
    return new RepFrame(this.parent, this.node, this.count + 1, 2);
  }
  canEnd(): boolean { return this.ph === 2 && this.count >= this.node.min && complete(this.parent, 0).canEnd(); }
  rem(): number {
    const ml = minLen(this.node.item);
    const done = this.count + (this.ph === 2 ? 0 : 1); // items finished once the current one is
    const more = Math.max(0, this.node.min - done);
    if (this.ph === 3) return ml + Math.max(0, this.node.min - this.count - 1) * (this.node.sep.length + ml);
    return (this.ph === 0 ? ml : 0) + more * (this.node.sep.length + ml);
  }
}

type TextNode = Extract<GNode, { k: 'text' }>;

class TextFrame extends Frame {
  constructor(parent: Frame | null, private readonly node: TextNode, private readonly m: number) { super(parent); }
  step(b: number): Frame[] {
    const t = this.node.trigger;
    // On a mismatch restart from scratch: the triggers (`<tool_call>`, `[TOOL_CALLS]`,
    // `<|python_tag|>`) never overlap themselves, so no KMP table is needed.
    let m = this.m;
    if (t[m] !== b) m = 0;
    if (t[m] === b) m++;
    if (m === t.length) return pushNode(this.node.then, this.parent);
    return [new TextFrame(this.parent, this.node, m)];
  }
  canEnd(): boolean { return complete(this.parent, 0).canEnd(); }
  rem(): number { return 0; }
  /** Bytes that cannot begin the trigger are all allowed: the fast path's key. */
  get matched(): number { return this.m; }
  get triggerByte(): number { return this.node.trigger[0]!; }
}
export { TextFrame };

/** Matcher state: the alternatives still alive. */
export type MState = readonly Frame[];

export function stepState(s: MState, b: number): Frame[] {
  if (s.length === 1) return s[0]!.step(b);
  const out: Frame[] = [];
  for (const f of s) for (const g of f.step(b)) out.push(g);
  // Unions of similar shapes can multiply alternatives; a bound keeps the walk cheap.
  return out.length > 64 ? out.slice(0, 64) : out;
}

export function canEnd(s: MState): boolean {
  return s.some((f) => f.canEnd());
}

/** Fewest bytes to a complete output (the budget logic closes along this). */
export function distance(s: MState): number {
  let best = Infinity;
  for (const top of s) {
    let n = 0;
    for (let f: Frame | null = top; f !== null; f = f.parent) n += f.rem();
    if (n < best) best = n;
  }
  return best;
}

export function initialState(root: GNode): Frame[] {
  return pushNode(root, null);
}
