// What a pattern-constrained JSON string still needs: for each DFA state and each count of
// characters written so far, the fewest bytes of string body (JSON-escaped UTF-8) that complete
// it with the pattern matched and minLength/maxLength met — or "impossible". The decoder never
// enters an impossible state, so it cannot paint itself into a corner (a 28-character string
// that must end in \u0001 gets its \u0001 as character 28), and the budget logic closes along
// these exact distances. Built by dynamic programming over the count, with a bound on the work.

import { RegexRefused } from './regex-parse.ts';
import type { Dfa } from './regex-dfa.ts';

export const INF = 0x3fffffff;
/** Elementary steps one table may take (columns × transitions), and its cells (states × columns). */
export const TABLE_WORK = 10_000_000;
export const TABLE_CELLS = 1_000_000;

export interface PatternTable {
  readonly dfa: Dfa;
  readonly min: number;
  readonly max: number;
  /** Columns 0 … cols-1 hold counts; a count past the last column reads the last (unbounded) or is INF. */
  readonly cols: number;
  /** rem[d * cols + c]: fewest body bytes to finish from state d after c characters (INF: none). */
  readonly rem: Int32Array;
  /** Per class: fewest bytes to spell one of its code points in a JSON string (0: none can be). */
  readonly cost: Uint8Array;
  /**
   * A large maxLength: counts from tailStart on read this exact table (count − tailStart, max
   * N+1); below it the unbounded table is exact (see buildPatternTable). Null otherwise.
   */
  readonly tail: PatternTable | null;
  readonly tailStart: number;
  /** Per state: the classes with a live successor, and that successor (sparse rows). */
  readonly outCls: readonly Int32Array[];
  readonly outTo: readonly Int32Array[];
}

/** JSON string spelling cost of code point cp (escapes where JSON requires them). */
export function jsonCost(cp: number): number {
  if (cp < 0x20) return cp === 8 || cp === 9 || cp === 10 || cp === 12 || cp === 13 ? 2 : 6;
  if (cp === 0x22 || cp === 0x5c) return 2;
  if (cp < 0x80) return 1;
  if (cp < 0x800) return 2;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0; // lone surrogates: never written (see frames.ts)
  if (cp < 0x10000) return 3;
  return 4;
}

/**
 * Printable ASCII other than `"` and `\`: written as itself, never escaped (`\u0041`, `\/`), so
 * a pattern string comes out in its plain spelling and a character costs one token path, not six.
 */
export function plainAscii(cp: number): boolean {
  return cp >= 0x20 && cp < 0x7f && cp !== 0x22 && cp !== 0x5c;
}

export function remAt(t: PatternTable, d: number, c: number): number {
  if (t.tail !== null && c >= t.tailStart) return remAt(t.tail, d, c - t.tailStart);
  if (c < t.cols) return t.rem[d * t.cols + c]!;
  // Past the last column: any count is as good as min when max is unbounded; none is allowed past max.
  return t.max === Infinity || t.tail !== null ? t.rem[d * t.cols + t.cols - 1]! : INF;
}

const TABLES_KEPT = 64;
const tables = new Map<string, PatternTable>();

/** buildPatternTable through an LRU keyed by pattern and bounds (requests resend their schemas). */
export function patternTable(pattern: string, dfa: Dfa, min: number, max: number, what: string): PatternTable {
  const key = `${min}:${max}:${pattern}`;
  let t = tables.get(key);
  if (t) tables.delete(key);
  else {
    t = buildPatternTable(dfa, min, max, what);
    if (tables.size >= TABLES_KEPT) tables.delete(tables.keys().next().value as string);
  }
  tables.set(key, t);
  return t;
}

export function buildPatternTable(dfa: Dfa, min: number, max: number, what: string, split = true): PatternTable {
  const N = dfa.nStates;
  // A large maxLength costs only its last N+1 counts. A path to acceptance that is at least N
  // characters longer than needed repeats a state, so dropping that cycle keeps it valid: while
  // the room left (max − count) exceeds N beyond what min still demands, max changes nothing and
  // the unbounded table is exact. Only the tail, count > max − N − 1, needs max itself (and there
  // count ≥ min already).
  if (split && max !== Infinity && max - min >= 2 * N + 2) {
    const open = buildPatternTable(dfa, min, Infinity, what);
    const tail = buildPatternTable(dfa, 0, N + 1, what);
    return { ...open, max, tail, tailStart: max - N - 1 };
  }
  const K = dfa.nClasses;
  const cost = new Uint8Array(K);
  for (let k = 0; k < K; k++) cost[k] = jsonCost(dfa.bounds[k]!);
  const outCls: Int32Array[] = [];
  const outTo: Int32Array[] = [];
  let edges = 0;
  for (let d = 0; d < N; d++) {
    const cs: number[] = [];
    const ts: number[] = [];
    for (let k = 0; k < K; k++) {
      const t = dfa.next[d * K + k]!;
      if (t >= 0 && cost[k]! > 0) { cs.push(k); ts.push(t); }
    }
    outCls.push(Int32Array.from(cs));
    outTo.push(Int32Array.from(ts));
    edges += cs.length;
  }
  const finite = max !== Infinity;
  const cols = (finite ? max : min) + 1;
  if ((cols + 2) * (edges + N) > TABLE_WORK || cols * N > TABLE_CELLS) {
    throw new RegexRefused(`a pattern together with minLength/maxLength this large (${what})`, '');
  }
  const rem = new Int32Array(N * cols).fill(INF);
  const last = cols - 1;
  // Last column: no more characters (finite max) or any number more (infinite max, count ≥ min):
  // shortest paths to an accepting state, Bellman-Ford (costs are positive, ≤ N rounds).
  for (let d = 0; d < N; d++) if (dfa.accept[d] === 1) rem[d * cols + last] = 0;
  if (!finite) {
    // Dijkstra backwards from the accepting states; costs are 1…6, so a bucket queue.
    const rev: number[][] = Array.from({ length: N }, () => []);
    for (let d = 0; d < N; d++) {
      const cs = outCls[d]!;
      const ts = outTo[d]!;
      for (let j = 0; j < cs.length; j++) rev[ts[j]!]!.push(d, cost[cs[j]!]!);
    }
    const buckets: number[][] = [[]];
    for (let d = 0; d < N; d++) if (rem[d * cols + last] === 0) buckets[0]!.push(d);
    for (let dist = 0; dist < buckets.length; dist++) {
      for (const d of buckets[dist] ?? []) {
        if (rem[d * cols + last]! < dist) continue;
        const r = rev[d]!;
        for (let j = 0; j < r.length; j += 2) {
          const p = r[j]!;
          const v = dist + r[j + 1]!;
          if (v < rem[p * cols + last]!) {
            rem[p * cols + last] = v;
            (buckets[v] ??= []).push(p);
          }
        }
      }
    }
  }
  for (let c = last - 1; c >= 0; c--) {
    for (let d = 0; d < N; d++) {
      let best = dfa.accept[d] === 1 && c >= min ? 0 : INF;
      const cs = outCls[d]!;
      const ts = outTo[d]!;
      for (let j = 0; j < cs.length; j++) {
        const v = cost[cs[j]!]! + rem[ts[j]! * cols + c + 1]!;
        if (v < best) best = v;
      }
      rem[d * cols + c] = best;
    }
  }
  return { dfa, min, max, cols, rem, cost, outCls, outTo, tail: null, tailStart: 0 };
}

/**
 * Fewest body bytes after a character from code points [lo, hi] is written in state d with c
 * characters before it (INF: none of them leads anywhere). Counts the character itself as 0 bytes:
 * the caller adds what its spelling still owes.
 */
export function remAfterChar(t: PatternTable, d: number, c: number, lo: number, hi: number, escaped = false): number {
  const cs = t.outCls[d]!;
  const ts = t.outTo[d]!;
  const b = t.dfa.bounds;
  let best = INF;
  for (let j = 0; j < cs.length; j++) {
    const k = cs[j]!;
    if (b[k + 1]! - 1 < lo) continue;
    if (b[k]! > hi) break;
    if (escaped && plainAscii(b[k]!)) continue;
    const v = remAt(t, ts[j]!, c + 1);
    if (v < best) best = v;
  }
  return best;
}
