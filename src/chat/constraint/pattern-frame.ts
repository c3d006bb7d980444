// A JSON string whose value must match a pattern (and minLength/maxLength): the bytes are decoded
// as StrFrame does (UTF-8 well-formedness, escapes, no lone surrogates), and each finished code
// point steps the pattern's DFA. A byte is allowed only if some way to finish the string remains
// (pattern-table.ts), so mid-character bytes are checked against the whole range of code points
// they could still become.

import { Frame, complete } from './frame-base.ts';
import { INF, plainAscii, remAfterChar, remAt } from './pattern-table.ts';
import type { PatternTable } from './pattern-table.ts';

// Pending-character kinds.
const NONE = 0;
const UTF8 = 1;
const BACKSLASH = 2;
const HEX = 3;

/** `\X` escapes other than `\u`: the byte after the backslash → the code point. */
const SIMPLE_ESCAPES: ReadonlyMap<number, number> = new Map([[0x22, 0x22], [0x5c, 0x5c], [0x2f, 0x2f], [0x62, 8], [0x66, 0x0c], [0x6e, 0x0a], [0x72, 0x0d], [0x74, 0x09]]);

function hexVal(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

export class PatStrFrame extends Frame {
  constructor(
    parent: Frame | null,
    private readonly t: PatternTable,
    private readonly open: boolean,
    /** Characters written, and the DFA state after them. */
    private readonly count: number,
    private readonly d: number,
    private readonly pend: number,
    /** UTF8: code points still possible [lo, hi], continuation bytes owed and their byte range.
     *  HEX: lo/hi the same, `owed` hex digits still to come. */
    private readonly lo: number,
    private readonly hi: number,
    private readonly owed: number,
    private readonly blo: number,
    private readonly bhi: number,
  ) { super(parent); }

  static start(parent: Frame | null, t: PatternTable): PatStrFrame {
    return new PatStrFrame(parent, t, false, 0, 0, NONE, 0, 0, 0, 0, 0);
  }

  private with(pend: number, lo: number, hi: number, owed: number, blo = 0x80, bhi = 0xbf): Frame[] {
    const f = new PatStrFrame(this.parent, this.t, true, this.count, this.d, pend, lo, hi, owed, blo, bhi);
    return f.rem() < INF ? [f] : [];
  }

  /** A whole code point was written. */
  private char(cp: number): Frame[] {
    const t = this.t;
    const dfa = t.dfa;
    // Classes are few and sorted; a short scan of the state's live row finds cp's.
    const cs = t.outCls[this.d]!;
    const ts = t.outTo[this.d]!;
    const b = dfa.bounds;
    for (let j = 0; j < cs.length; j++) {
      const k = cs[j]!;
      if (b[k + 1]! <= cp) continue;
      if (b[k]! > cp) return [];
      const to = ts[j]!;
      if (remAt(t, to, this.count + 1) >= INF) return [];
      return [new PatStrFrame(this.parent, t, true, this.count + 1, to, NONE, 0, 0, 0, 0, 0)];
    }
    return [];
  }

  step(b: number): Frame[] {
    if (!this.open) return b === 0x22 ? [new PatStrFrame(this.parent, this.t, true, 0, 0, NONE, 0, 0, 0, 0, 0)] : [];
    switch (this.pend) {
      case BACKSLASH: {
        if (b === 0x75) return this.with(HEX, 0, 0xffff, 4);
        const cp = SIMPLE_ESCAPES.get(b);
        return cp === undefined || plainAscii(cp) ? [] : this.char(cp);
      }
      case HEX: {
        const h = hexVal(b);
        if (h < 0) return [];
        const owed = this.owed - 1;
        const lo = this.lo + h * 16 ** owed;
        if (owed === 0) return (lo >= 0xd800 && lo <= 0xdfff) || plainAscii(lo) ? [] : this.char(lo);
        return this.with(HEX, lo, lo + 16 ** owed - 1, owed);
      }
      case UTF8: {
        if (b < this.blo || b > this.bhi) return [];
        const owed = this.owed - 1;
        const v = this.lo + ((b & 0x3f) << (6 * owed));
        if (owed === 0) return this.char(v);
        return this.with(UTF8, v, Math.min(this.hi, v + (1 << (6 * owed)) - 1), owed);
      }
    }
    if (b === 0x22) return this.count >= this.t.min && this.t.dfa.accept[this.d] === 1 ? [complete(this.parent, 0)] : [];
    if (b === 0x5c) return this.with(BACKSLASH, 0, 0, 0);
    if (b < 0x20) return [];
    if (b < 0x80) return this.char(b);
    // RFC 3629 table 3-7: well-formed UTF-8; lo/hi are the code points the sequence can reach.
    if (b >= 0xc2 && b <= 0xdf) return this.with(UTF8, (b & 0x1f) << 6, ((b & 0x1f) << 6) | 0x3f, 1);
    if (b >= 0xe0 && b <= 0xef) {
      const base = (b & 0x0f) << 12;
      if (b === 0xe0) return this.with(UTF8, base, base | 0xfff, 2, 0xa0, 0xbf);
      if (b === 0xed) return this.with(UTF8, base, base | 0xfff, 2, 0x80, 0x9f);
      return this.with(UTF8, base, base | 0xfff, 2);
    }
    if (b >= 0xf0 && b <= 0xf4) {
      const base = (b & 0x07) << 18;
      if (b === 0xf0) return this.with(UTF8, base, base | 0x3ffff, 3, 0x90, 0xbf);
      if (b === 0xf4) return this.with(UTF8, base, base | 0x3ffff, 3, 0x80, 0x8f);
      return this.with(UTF8, base, base | 0x3ffff, 3);
    }
    return [];
  }

  canEnd(): boolean { return false; }

  /** At a character boundary inside the string: what pattern-mask.ts needs for its fast path. */
  patternAt(): { readonly t: PatternTable; readonly d: number; readonly count: number } | null {
    return this.open && this.pend === NONE ? { t: this.t, d: this.d, count: this.count } : null;
  }

  /** Bytes to the end of the string, closing quote included. */
  rem(): number {
    const t = this.t;
    if (!this.open) {
      const r = remAt(t, 0, 0);
      return r >= INF ? INF : r + 2;
    }
    let r: number;
    switch (this.pend) {
      case NONE: r = remAt(t, this.d, this.count); break;
      case UTF8: r = this.owed + remAfterChar(t, this.d, this.count, this.blo === 0xa0 || this.blo === 0x90 ? this.minLead() : this.lo, this.hi); break;
      case HEX: r = this.owed + remAfterChar(t, this.d, this.count, this.lo, this.hi, true); break;
      default: {
        // After `\`: one more byte for a short escape, five for \uXXXX.
        r = 5 + remAfterChar(t, this.d, this.count, 0, 0xffff, true);
        for (const cp of SIMPLE_ESCAPES.values()) if (!plainAscii(cp)) r = Math.min(r, 1 + remAfterChar(t, this.d, this.count, cp, cp));
      }
    }
    return r >= INF ? INF : r + 1;
  }

  /** Overlong forms are excluded by the next byte's range; the lowest code point it allows. */
  private minLead(): number {
    return this.owed === 2 && this.blo === 0xa0 ? 0x800 : this.owed === 3 && this.blo === 0x90 ? 0x10000 : this.lo;
  }
}
