// A regex syntax tree → Thompson NFA → DFA over code-point classes, built eagerly with hard
// bounds on its size and on the work spent, so a hostile pattern costs at most a few
// milliseconds of the event loop and then a 400, never a backtracking blow-up
// (cf. RE2, https://swtch.com/~rsc/regexp/regexp1.html). Matching is one table lookup per code
// point. JSON Schema patterns are unanchored, so the NFA starts and ends with any-character
// loops; `^` and `$` are assertions that only hold at the ends of the input.

import { ANY_RANGES, RegexRefused, parseRegex } from './regex-parse.ts';
import type { RNode, Ranges } from './regex-parse.ts';

/** Bounds on what one pattern may cost (each exceeded → RegexRefused → 400). */
export const REGEX_LIMITS = {
  /** NFA states (counted quantifiers like {1,1000} expand into copies). */
  nfaStates: 20_000,
  /** DFA states. */
  dfaStates: 3_000,
  /** DFA table cells (states × character classes). */
  tableCells: 1_000_000,
  /** Elementary steps of the subset construction (closure visits, set keys, class buckets). */
  work: 4_000_000,
  /**
   * A last resort on a slow machine: wall-clock milliseconds one compilation of a user's pattern
   * may take (the built-in formats are exempt: they must never depend on the machine's load).
   */
  ms: 200,
} as const;

export interface Dfa {
  /** Class k holds code points bounds[k] … bounds[k+1]-1. */
  readonly bounds: Int32Array;
  readonly nClasses: number;
  readonly nStates: number;
  /** next[state * nClasses + class]: the next state, or -1. State 0 is the start. */
  readonly next: Int32Array;
  /** Whether the input may end in this state. */
  readonly accept: Uint8Array;
}

/** Boundaries every class set is also cut at, so each class has one JSON spelling cost (pattern-table.ts). */
const EXTRA_CUTS = [...Array.from({ length: 0x21 }, (_, k) => k), 0x22, 0x23, 0x5c, 0x5d, 0x7f, 0x80, 0x800, 0xd800, 0xe000, 0x10000, 0x110000];

export function classOf(dfa: Dfa, cp: number): number {
  const b = dfa.bounds;
  let lo = 0;
  let hi = dfa.nClasses - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (b[mid]! <= cp) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

interface Nfa {
  eps: number[][];
  bol: number[][];
  eol: number[][];
  set: (Ranges | null)[];
  out: number[];
}

function buildNfa(root: RNode, src: string): { nfa: Nfa; start: number; final: number } {
  const nfa: Nfa = { eps: [], bol: [], eol: [], set: [], out: [] };
  const state = (): number => {
    if (nfa.eps.length >= REGEX_LIMITS.nfaStates) throw new RegexRefused(`a pattern this large (over ${REGEX_LIMITS.nfaStates} automaton states; lower its {n,m} counts)`, src);
    nfa.eps.push([]); nfa.bol.push([]); nfa.eol.push([]); nfa.set.push(null); nfa.out.push(-1);
    return nfa.eps.length - 1;
  };
  const charEdge = (r: Ranges): [number, number] => {
    const s = state();
    const e = state();
    nfa.set[s] = r;
    nfa.out[s] = e;
    return [s, e];
  };
  const build = (n: RNode): [number, number] => {
    switch (n.t) {
      case 'set': return charEdge(n.r);
      case 'bol': case 'eol': {
        const s = state();
        const e = state();
        (n.t === 'bol' ? nfa.bol : nfa.eol)[s]!.push(e);
        return [s, e];
      }
      case 'cat': {
        const s = state();
        let end = s;
        for (const it of n.items) {
          const [a, b] = build(it);
          nfa.eps[end]!.push(a);
          end = b;
        }
        return [s, end];
      }
      case 'alt': {
        const s = state();
        const e = state();
        for (const it of n.items) {
          const [a, b] = build(it);
          nfa.eps[s]!.push(a);
          nfa.eps[b]!.push(e);
        }
        return [s, e];
      }
      case 'rep': {
        const s = state();
        let end = s;
        for (let k = 0; k < n.min; k++) {
          const [a, b] = build(n.item);
          nfa.eps[end]!.push(a);
          end = b;
        }
        if (n.max === Infinity) {
          const [a, b] = build(n.item);
          const loop = state();
          nfa.eps[end]!.push(loop);
          nfa.eps[loop]!.push(a);
          nfa.eps[b]!.push(loop);
          end = loop;
        } else {
          const e = state();
          for (let k = n.min; k < n.max; k++) {
            const [a, b] = build(n.item);
            nfa.eps[end]!.push(a, e);
            end = b;
          }
          nfa.eps[end]!.push(e);
          end = e;
        }
        return [s, end];
      }
    }
  };
  // Unanchored search: any prefix, the pattern, any suffix.
  const [pre] = charEdge(ANY_RANGES);
  nfa.out[pre] = pre;
  const [a, b] = build(root);
  nfa.eps[pre]!.push(a);
  const [fin] = charEdge(ANY_RANGES);
  nfa.out[fin] = fin;
  nfa.eps[b]!.push(fin);
  return { nfa, start: pre, final: fin };
}

export function compileDfa(src: string, timeBox = true): Dfa {
  const root = parseRegex(src);
  const { nfa, start, final } = buildNfa(root, src);
  let work = 0;
  const started = performance.now();
  const tooBig = (transient = false): never => {
    const e = new RegexRefused(`a pattern this complex (its automaton exceeds ${REGEX_LIMITS.dfaStates} states or ${REGEX_LIMITS.work} steps${transient ? `, or ${REGEX_LIMITS.ms} ms` : ''})`, src);
    e.transient = transient;
    throw e;
  };

  // Character classes: every set boundary cuts the code-point line.
  const cuts = new Set<number>(EXTRA_CUTS);
  for (const r of nfa.set) if (r) for (let k = 0; k < r.length; k += 2) { cuts.add(r[k]!); cuts.add(r[k + 1]! + 1); }
  const sorted = [...cuts].filter((c) => c <= 0x110000).sort((x, y) => x - y);
  const bounds = Int32Array.from(sorted);
  const nClasses = bounds.length - 1;
  const probe: Dfa = { bounds, nClasses, nStates: 0, next: new Int32Array(0), accept: new Uint8Array(0) };
  // The classes each char edge covers.
  const edgeClasses: (Int32Array | null)[] = nfa.set.map((r) => {
    if (!r) return null;
    const ks: number[] = [];
    for (let k = 0; k < r.length; k += 2) for (let c = classOf(probe, r[k]!); c < nClasses && bounds[c]! <= r[k + 1]!; c++) ks.push(c);
    work += ks.length;
    return Int32Array.from(ks);
  });

  const n = nfa.eps.length;
  const mark = new Int32Array(n).fill(-1);
  let stamp = 0;
  const closure = (seeds: readonly number[], begin: boolean, end: boolean): number[] => {
    stamp++;
    const out: number[] = [];
    const stack = [...seeds];
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (mark[s] === stamp) continue;
      mark[s] = stamp;
      out.push(s);
      work++;
      for (const x of nfa.eps[s]!) stack.push(x);
      if (begin) for (const x of nfa.bol[s]!) stack.push(x);
      if (end) for (const x of nfa.eol[s]!) stack.push(x);
    }
    if (work > REGEX_LIMITS.work) tooBig();
    if (timeBox && performance.now() - started > REGEX_LIMITS.ms) tooBig(true);
    return out;
  };

  const sets: number[][] = [];
  const ids = new Map<string, number>();
  const accept: number[] = [];
  const rows: Int32Array[] = [];
  const intern = (set: number[], isStart: boolean): number => {
    // Only states with a char edge (or the final one) matter for what follows.
    const core = set.filter((s) => nfa.set[s] !== null || s === final).sort((x, y) => x - y);
    work += core.length * 4; // filter, sort and key
    // `$` holds at the end: the input may end here if the final state is reachable through it.
    const acc = closure(set, isStart, true).includes(final) ? 1 : 0;
    const key = `${isStart ? 'S' : ''}${acc}:${core.join(',')}`;
    let id = ids.get(key);
    if (id === undefined) {
      id = sets.length;
      if (id >= REGEX_LIMITS.dfaStates || (id + 1) * nClasses > REGEX_LIMITS.tableCells) tooBig();
      ids.set(key, id);
      sets.push(core);
      accept.push(acc);
    }
    return id;
  };

  intern(closure([start], true, false), true);
  const buckets: number[][] = Array.from({ length: nClasses }, () => []);
  for (let d = 0; d < sets.length; d++) {
    const row = new Int32Array(nClasses).fill(-1);
    const touched: number[] = [];
    for (const s of sets[d]!) {
      const cls = edgeClasses[s];
      if (!cls) continue;
      const to = nfa.out[s]!;
      for (let k = 0; k < cls.length; k++) {
        const c = cls[k]!;
        if (buckets[c]!.length === 0) touched.push(c);
        buckets[c]!.push(to);
      }
      work += cls.length;
    }
    if (work > REGEX_LIMITS.work) tooBig();
    // Classes with the same targets share one closure.
    const memo = new Map<string, number>();
    for (const c of touched) {
      const targets = buckets[c]!;
      const key = targets.join(',');
      work += targets.length;
      let t = memo.get(key);
      if (t === undefined) {
        t = intern(closure(targets, false, false), false);
        memo.set(key, t);
      }
      row[c] = t;
      buckets[c] = [];
    }
    rows.push(row);
  }
  const next = new Int32Array(sets.length * nClasses);
  rows.forEach((r, d) => next.set(r, d * nClasses));
  pruneDead(next, Uint8Array.from(accept), nClasses);
  return { bounds, nClasses, nStates: sets.length, next, accept: Uint8Array.from(accept) };
}

/**
 * Sends every transition into a state that can never reach acceptance to -1. An anchored pattern
 * keeps the unanchored prefix loop in its sets, so without this every state would have a live
 * edge on every character: the decoder would consider (and the mask walk visit) all of them.
 */
function pruneDead(next: Int32Array, accept: Uint8Array, K: number): void {
  const N = accept.length;
  const rev: number[][] = Array.from({ length: N }, () => []);
  for (let d = 0; d < N; d++) for (let k = 0; k < K; k++) { const t = next[d * K + k]!; if (t >= 0) rev[t]!.push(d); }
  const live = new Uint8Array(N);
  const stack: number[] = [];
  for (let d = 0; d < N; d++) if (accept[d] === 1) { live[d] = 1; stack.push(d); }
  while (stack.length > 0) for (const p of rev[stack.pop()!]!) if (live[p] === 0) { live[p] = 1; stack.push(p); }
  for (let i = 0; i < next.length; i++) if (next[i]! >= 0 && live[next[i]!] === 0) next[i] = -1;
}

const CACHE_MAX = 128;
const cache = new Map<string, Dfa | RegexRefused>();

/** compileDfa with an LRU cache (agents resend the same schemas; n choices compile once). */
export function dfaFor(src: string, builtIn = false): Dfa {
  let hit = cache.get(src);
  if (hit === undefined) {
    try {
      hit = compileDfa(src, !builtIn);
    } catch (e) {
      if (!(e instanceof RegexRefused)) throw e;
      hit = e;
    }
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  } else cache.delete(src);
  // A refusal by the time box depends on the moment's load: not remembered.
  if (!(hit instanceof RegexRefused && hit.transient)) cache.set(src, hit);
  if (hit instanceof RegexRefused) throw hit;
  return hit;
}

/** Whether `s` contains a match of the pattern (JSON Schema semantics), in time linear in s. */
export function dfaTest(dfa: Dfa, s: string): boolean {
  let st = 0;
  const nc = dfa.nClasses;
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) { cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00); i++; }
    }
    st = dfa.next[st * nc + classOf(dfa, cp)]!;
    if (st < 0) return false;
  }
  return dfa.accept[st] === 1;
}
