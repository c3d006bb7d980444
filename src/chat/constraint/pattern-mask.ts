// The fast mask path inside a pattern-constrained string (pattern-frame.ts): rather than walk the
// vocabulary trie frame by frame, run every "plain" token (whole UTF-8 characters, no `"`, `\` or
// control bytes) through the pattern's DFA as a sequence of character classes. The end state of
// each token from a DFA state is cached per state (patterns loop through few states), so most
// steps cost one pass over an Int32Array of the vocabulary.

import { INF, remAt } from './pattern-table.ts';
import type { PatternTable } from './pattern-table.ts';
import { classOf } from './regex-dfa.ts';
import type { VocabIndex } from './vocab-index.ts';

/** Per vocabulary: the code points of every plain token, flat (offsets into cps). */
interface VocabChars { readonly off: Int32Array; readonly cps: Int32Array }
const vocabChars = new WeakMap<VocabIndex, VocabChars>();

function charsOf(ix: VocabIndex): VocabChars {
  let v = vocabChars.get(ix);
  if (v) return v;
  const n = ix.vocabSize;
  const off = new Int32Array(n + 1);
  let total = 0;
  for (let id = 0; id < n; id++) if (ix.strPlain[id] === 1) total += ix.strChars[id]!;
  const cps = new Int32Array(total);
  let k = 0;
  for (let id = 0; id < n; id++) {
    off[id] = k;
    if (ix.strPlain[id] !== 1) continue;
    const b = ix.bytes[id]!;
    for (let i = 0; i < b.length;) {
      const x = b[i]!;
      let cp: number;
      if (x < 0x80) { cp = x; i += 1; }
      else if (x < 0xe0) { cp = ((x & 0x1f) << 6) | (b[i + 1]! & 0x3f); i += 2; }
      else if (x < 0xf0) { cp = ((x & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f); i += 3; }
      else { cp = ((x & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f); i += 4; }
      cps[k++] = cp;
    }
  }
  off[n] = k;
  v = { off, cps };
  vocabChars.set(ix, v);
  return v;
}

/** Per (table, vocabulary): token characters as DFA classes, and end states by start state. */
interface TableVocab { readonly cls: Uint16Array | Int32Array; readonly ends: Map<number, Int32Array> }
const perTable = new WeakMap<PatternTable, WeakMap<VocabIndex, TableVocab>>();
/** End-state rows kept per table (each is 4 bytes × vocabulary). */
const ENDS_KEPT = 24;

function tableVocab(t: PatternTable, ix: VocabIndex): TableVocab {
  let m = perTable.get(t);
  if (!m) { m = new WeakMap(); perTable.set(t, m); }
  let tv = m.get(ix);
  if (!tv) {
    const { cps } = charsOf(ix);
    const cls = t.dfa.nClasses < 0xffff ? new Uint16Array(cps.length) : new Int32Array(cps.length);
    for (let i = 0; i < cps.length; i++) cls[i] = classOf(t.dfa, cps[i]!);
    tv = { cls, ends: new Map() };
    m.set(ix, tv);
  }
  return tv;
}

function endsFrom(t: PatternTable, ix: VocabIndex, d: number): Int32Array {
  const tv = tableVocab(t, ix);
  let e = tv.ends.get(d);
  if (e) {
    tv.ends.delete(d);
    tv.ends.set(d, e);
    return e;
  }
  const { off } = charsOf(ix);
  const { cls } = tv;
  const next = t.dfa.next;
  const K = t.dfa.nClasses;
  const cost = t.cost;
  const n = ix.vocabSize;
  e = new Int32Array(n).fill(-1);
  for (let id = 0; id < n; id++) {
    if (ix.strPlain[id] !== 1) continue;
    let s = d;
    for (let i = off[id]!, end = off[id + 1]!; i < end && s >= 0; i++) {
      const c = cls[i]!;
      s = cost[c] === 0 ? -1 : next[s * K + c]!;
    }
    e[id] = s;
  }
  if (tv.ends.size >= ENDS_KEPT) tv.ends.delete(tv.ends.keys().next().value as number);
  tv.ends.set(d, e);
  return e;
}

/**
 * Marks the plain tokens allowed in pattern string t at DFA state d after `count` characters;
 * `budget` is the most body bytes the string may still need after the token (Infinity: any).
 */
export function patternPlainMask(t: PatternTable, ix: VocabIndex, d: number, count: number, budget: number, mask: Uint8Array): void {
  const ends = endsFrom(t, ix, d);
  const chars = ix.strChars;
  const n = ix.vocabSize;
  for (let id = 0; id < n; id++) {
    const s = ends[id]!;
    if (s < 0) continue;
    const r = remAt(t, s, count + chars[id]!);
    if (r < INF && r <= budget) mask[id] = 1;
  }
}
