// The fast mask path inside a pattern-constrained string (pattern-frame.ts): rather than walk the
// vocabulary trie frame by frame, run every "plain" token (whole UTF-8 characters, no `"`, `\` or
// control bytes) through the pattern's DFA as a sequence of character classes. The end state of
// each token from a DFA state is cached per state (patterns loop through few states), so most
// steps cost one pass over an Int32Array of the vocabulary.

import { INF, remAt } from './pattern-table.ts';
import type { PatternTable } from './pattern-table.ts';
import { classOf } from './regex-dfa.ts';
import type { VocabIndex } from './vocab-index.ts';

/**
 * Per vocabulary: the plain tokens as a trie over code points, laid out in preorder like
 * vocab-index.ts's byte trie (node i's subtree is i+1 … end[i]-1), so a DFA walk skips every
 * token that shares a dead prefix in one step.
 */
interface CpTrie {
  readonly cp: Int32Array;
  readonly depth: Int32Array;
  readonly end: Int32Array;
  /** Tokens ending at each node: first[i] … first[i+1]-1 index into toks. */
  readonly first: Int32Array;
  readonly toks: Int32Array;
  readonly nodes: number;
  readonly maxDepth: number;
}
const tries = new WeakMap<VocabIndex, CpTrie>();

function decode(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length;) {
    const x = b[i]!;
    if (x < 0x80) { out.push(x); i += 1; }
    else if (x < 0xe0) { out.push(((x & 0x1f) << 6) | (b[i + 1]! & 0x3f)); i += 2; }
    else if (x < 0xf0) { out.push(((x & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f)); i += 3; }
    else { out.push(((x & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f)); i += 4; }
  }
  return out;
}

function trieOf(ix: VocabIndex): CpTrie {
  let tr = tries.get(ix);
  if (tr) return tr;
  const seqs: { cps: number[]; id: number }[] = [];
  for (let id = 0; id < ix.vocabSize; id++) if (ix.strPlain[id] === 1) seqs.push({ cps: decode(ix.bytes[id]!), id });
  seqs.sort((a, b) => {
    const n = Math.min(a.cps.length, b.cps.length);
    for (let i = 0; i < n; i++) if (a.cps[i] !== b.cps[i]) return a.cps[i]! - b.cps[i]!;
    return a.cps.length - b.cps.length || a.id - b.id;
  });
  const cp: number[] = [];
  const depth: number[] = [];
  const end: number[] = [];
  const tokAt: number[][] = [];
  const path: number[] = [];
  let prev: number[] = [];
  let maxDepth = 0;
  for (const { cps, id } of seqs) {
    let c = 0;
    while (c < cps.length && c < prev.length && cps[c] === prev[c]) c++;
    for (let d = prev.length; d > c; d--) end[path[d]!] = cp.length;
    for (let d = c + 1; d <= cps.length; d++) {
      path[d] = cp.length;
      cp.push(cps[d - 1]!); depth.push(d); end.push(0); tokAt.push([]);
    }
    tokAt[path[cps.length]!]!.push(id);
    prev = cps;
    maxDepth = Math.max(maxDepth, cps.length);
  }
  for (let d = prev.length; d > 0; d--) end[path[d]!] = cp.length;
  const first = new Int32Array(cp.length + 1);
  const toks: number[] = [];
  for (let i = 0; i < cp.length; i++) { first[i] = toks.length; toks.push(...tokAt[i]!); }
  first[cp.length] = toks.length;
  tr = { cp: Int32Array.from(cp), depth: Int32Array.from(depth), end: Int32Array.from(end), first, toks: Int32Array.from(toks), nodes: cp.length, maxDepth };
  tries.set(ix, tr);
  return tr;
}

/** Per (table, vocabulary): each trie node's DFA class, and end states by start state. */
interface TableVocab {
  readonly cls: Uint16Array | Int32Array;
  /** Depth-1 trie nodes by class (tens of thousands of first characters; most die at once). */
  readonly roots: readonly Int32Array[];
  readonly ends: Map<number, Ends>;
}
const perTable = new WeakMap<PatternTable, WeakMap<VocabIndex, TableVocab>>();
/** Candidates (token id + end state, 8 bytes) kept in all end lists of all tables together. */
const ENDS_BUDGET = 4_000_000;
/** Every kept end list, least recently used first (one LRU across tables bounds the memory). */
const kept = new Map<Ends, Map<number, Ends>>();
let held = 0;

function tableVocab(t: PatternTable, ix: VocabIndex): TableVocab {
  let m = perTable.get(t);
  if (!m) { m = new WeakMap(); perTable.set(t, m); }
  let tv = m.get(ix);
  if (!tv) {
    const tr = trieOf(ix);
    const cls = t.dfa.nClasses < 0xffff ? new Uint16Array(tr.nodes) : new Int32Array(tr.nodes);
    const roots: number[][] = Array.from({ length: t.dfa.nClasses }, () => []);
    for (let i = 0; i < tr.nodes; i++) {
      cls[i] = classOf(t.dfa, tr.cp[i]!);
      if (tr.depth[i] === 1) roots[cls[i]!]!.push(i);
    }
    tv = { cls, roots: roots.map((r) => Int32Array.from(r)), ends: new Map() };
    m.set(ix, tv);
  }
  return tv;
}

/** The plain tokens that survive the DFA from one state: ids and end states. */
interface Ends { readonly d: number; readonly ids: Int32Array; readonly to: Int32Array }

/** Scratch for endsFrom (one walk at a time: the event loop is single-threaded). */
let idBuf = new Int32Array(0);
let toBuf = new Int32Array(0);

function endsFrom(t: PatternTable, ix: VocabIndex, d: number): Ends {
  const tv = tableVocab(t, ix);
  let e = tv.ends.get(d);
  if (e) {
    kept.delete(e);
    kept.set(e, tv.ends);
    return e;
  }
  const tr = trieOf(ix);
  const { cls } = tv;
  const next = t.dfa.next;
  const K = t.dfa.nClasses;
  const cost = t.cost;
  const at = new Int32Array(tr.maxDepth + 1);
  at[0] = d;
  if (idBuf.length < tr.toks.length) { idBuf = new Int32Array(tr.toks.length); toBuf = new Int32Array(tr.toks.length); }
  let n = 0;
  const { depth, end, first, toks } = tr;
  const live = t.outCls[d]!;
  for (let j = 0; j < live.length; j++) {
    for (const r of tv.roots[live[j]!]!) {
      for (let i = r; i < end[r]!;) {
        const c = cls[i]!;
        const s = cost[c] === 0 ? -1 : next[at[depth[i]! - 1]! * K + c]!;
        if (s < 0) { i = end[i]!; continue; }
        at[depth[i]!] = s;
        for (let k = first[i]!; k < first[i + 1]!; k++) { idBuf[n] = toks[k]!; toBuf[n++] = s; }
        i++;
      }
    }
  }
  e = { d, ids: idBuf.slice(0, n), to: toBuf.slice(0, n) };
  held += e.ids.length;
  for (const [old, owner] of kept) {
    if (held <= ENDS_BUDGET) break;
    held -= old.ids.length;
    owner.delete(old.d);
    kept.delete(old);
  }
  tv.ends.set(d, e);
  kept.set(e, tv.ends);
  return e;
}

/**
 * Marks the plain tokens allowed in pattern string t at DFA state d after `count` characters;
 * `budget` is the most body bytes the string may still need after the token (Infinity: any).
 */
export function patternPlainMask(t: PatternTable, ix: VocabIndex, d: number, count: number, budget: number, mask: Uint8Array): void {
  const { ids, to } = endsFrom(t, ix, d);
  const chars = ix.strChars;
  const rem = t.rem;
  const cols = t.cols;
  const last = cols - 1;
  const open = t.max === Infinity || t.tail !== null;
  // Near a large maxLength the tail table decides: the general path (rare: the last N characters).
  if (t.tail !== null && count + ix.maxPlainChars >= t.tailStart) {
    for (let j = 0; j < ids.length; j++) {
      const r = remAt(t, to[j]!, count + chars[ids[j]!]!);
      if (r < INF && r <= budget) mask[ids[j]!] = 1;
    }
    return;
  }
  for (let j = 0; j < ids.length; j++) {
    const c = count + chars[ids[j]!]!;
    // remAt inlined: this loop runs over tens of thousands of tokens per step.
    const r = c < cols ? rem[to[j]! * cols + c]! : open ? rem[to[j]! * cols + last]! : INF;
    if (r < INF && r <= budget) mask[ids[j]!] = 1;
  }
}
