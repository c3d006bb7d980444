// ECMA-262 regular expressions (as JSON Schema's `pattern` uses them, with the `u` flag ajv sets)
// → a small syntax tree over code-point sets. Only the regular subset is accepted: literals,
// escapes, classes, `.`, groups, alternation, greedy/lazy quantifiers and `^`/`$`. What needs a
// backtracking engine (backreferences, lookaround, word boundaries) or Unicode tables
// (`\p{…}`) is refused with a RegexRefused that names it, so callers can answer 400.
// https://tc39.es/ecma262/#sec-patterns

/** Sorted, disjoint, inclusive code-point ranges: [lo0, hi0, lo1, hi1, …]. */
export type Ranges = readonly number[];

export type RNode =
  | { readonly t: 'set'; readonly r: Ranges }
  | { readonly t: 'cat'; readonly items: readonly RNode[] }
  | { readonly t: 'alt'; readonly items: readonly RNode[] }
  | { readonly t: 'rep'; readonly item: RNode; readonly min: number; readonly max: number }
  | { readonly t: 'bol' }
  | { readonly t: 'eol' };

/** A pattern this engine will not run; `feature` says which construct, for the 400. */
export class RegexRefused extends Error {
  /** Refused by the wall-clock time box (the machine's load), not by the pattern alone: retry later. */
  transient = false;
  constructor(readonly feature: string, readonly pattern: string) {
    super(pattern === '' ? `${feature} is not supported` : `${feature} is not supported in pattern ${JSON.stringify(pattern.length > 80 ? pattern.slice(0, 80) + '…' : pattern)}`);
  }
}

export const MAX_CP = 0x10ffff;
const ANY: Ranges = [0, MAX_CP];
const DIGIT: Ranges = [0x30, 0x39];
const WORD: Ranges = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
// WhiteSpace and LineTerminator code points (ECMA-262 §22.2.2.9, CharacterClassEscape `s`).
const SPACE: Ranges = normalize([0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff]);
const DOT: Ranges = complement([0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029]);
const SYNTAX = new Set('^$\\.*+?()[]{}|/');

export function normalize(r: readonly number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i]!, r[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

export function complement(r: Ranges): number[] {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < r.length; i += 2) {
    if (r[i]! > next) out.push(next, r[i]! - 1);
    next = r[i + 1]! + 1;
  }
  if (next <= MAX_CP) out.push(next, MAX_CP);
  return out;
}

/** Parses `src`; throws RegexRefused (unsupported) or SyntaxError-like RegexRefused (invalid). */
export function parseRegex(src: string): RNode {
  let i = 0;
  const refuse = (what: string): never => { throw new RegexRefused(what, src); };
  const invalid = (why: string): never => refuse(`invalid syntax (${why} at offset ${i})`);
  const peek = (): number => (i < src.length ? src.codePointAt(i)! : -1);
  const take = (): number => {
    const c = src.codePointAt(i)!;
    i += c > 0xffff ? 2 : 1;
    return c;
  };
  const eat = (s: string): boolean => {
    if (src.startsWith(s, i)) { i += s.length; return true; }
    return false;
  };
  const hex = (n: number): number => {
    const h = src.slice(i, i + n);
    if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) invalid('bad hex escape');
    i += n;
    return parseInt(h, 16);
  };

  /** `\u` escapes; with `u`, a surrogate pair written as two escapes is one code point. */
  const unicodeEscape = (): number => {
    if (eat('{')) {
      const end = src.indexOf('}', i);
      if (end < 0) invalid('unterminated \\u{');
      const h = src.slice(i, end);
      if (!/^[0-9a-fA-F]{1,6}$/.test(h) || parseInt(h, 16) > MAX_CP) invalid('bad \\u{…}');
      i = end + 1;
      return parseInt(h, 16);
    }
    const c = hex(4);
    if (c >= 0xd800 && c <= 0xdbff && src.startsWith('\\u', i) && /^[dD][c-fC-F][0-9a-fA-F]{2}$/.test(src.slice(i + 2, i + 6))) {
      const lo = parseInt(src.slice(i + 2, i + 6), 16);
      i += 6;
      return 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
    }
    return c;
  };

  /** After a backslash: a set (class escape) or one code point. */
  const escape = (inClass: boolean): Ranges | number => {
    if (i >= src.length) invalid('trailing backslash');
    const c = String.fromCodePoint(take());
    switch (c) {
      case 'd': return DIGIT;
      case 'D': return complement(DIGIT);
      case 'w': return WORD;
      case 'W': return complement(WORD);
      case 's': return SPACE;
      case 'S': return complement(SPACE);
      case 't': return 0x09;
      case 'n': return 0x0a;
      case 'v': return 0x0b;
      case 'f': return 0x0c;
      case 'r': return 0x0d;
      case 'x': return hex(2);
      case 'u': return unicodeEscape();
      case 'c': {
        const l = peek();
        if (!((l >= 0x41 && l <= 0x5a) || (l >= 0x61 && l <= 0x7a))) invalid('bad \\c');
        take();
        return l % 32;
      }
      case '0':
        if (peek() >= 0x30 && peek() <= 0x39) invalid('octal escape');
        return 0;
      case 'b':
        if (inClass) return 0x08;
        return refuse('word boundary \\b');
      case 'B':
        return refuse('word boundary \\B');
      case 'k': return refuse('named backreference \\k');
      case 'p': case 'P': return refuse(`Unicode property escape \\${c}`);
      case '-':
        if (inClass) return 0x2d;
        return invalid('\\- outside a class');
      default:
        if (c >= '1' && c <= '9') return refuse('backreference \\' + c);
        if (SYNTAX.has(c)) return c.codePointAt(0)!;
        return invalid(`unknown escape \\${c}`);
    }
  };

  const classAtom = (): Ranges | number => {
    const c = take();
    return c === 0x5c ? escape(true) : c;
  };

  const charClass = (): RNode => {
    const neg = eat('^');
    const acc: number[] = [];
    for (;;) {
      if (i >= src.length) invalid('unterminated class');
      if (peek() === 0x5d) { take(); break; }
      const a = classAtom();
      if (peek() === 0x2d && src[i + 1] !== ']' && i + 1 < src.length) {
        take();
        const b = classAtom();
        if (typeof a !== 'number' || typeof b !== 'number') invalid('class escape in a range');
        if ((a as number) > (b as number)) invalid('range out of order');
        acc.push(a as number, b as number);
        continue;
      }
      if (typeof a === 'number') acc.push(a, a);
      else acc.push(...a);
    }
    const r = normalize(acc);
    return { t: 'set', r: neg ? complement(r) : r };
  };

  const quantBound = (): number => {
    const m = /^\d+/.exec(src.slice(i));
    if (!m) return -1;
    i += m[0].length;
    return Number(m[0]);
  };

  const atom = (): RNode => {
    const c = take();
    switch (c) {
      case 0x5e: return { t: 'bol' };
      case 0x24: return { t: 'eol' };
      case 0x2e: return { t: 'set', r: DOT };
      case 0x5b: return charClass();
      case 0x5c: {
        const e = escape(false);
        return { t: 'set', r: typeof e === 'number' ? [e, e] : e };
      }
      case 0x28: {
        if (eat('?')) {
          if (eat(':')) { /* non-capturing */ }
          else if (eat('=') || eat('!')) refuse('lookahead (?= / (?!');
          else if (eat('<=') || eat('<!')) refuse('lookbehind (?<= / (?<!');
          else if (eat('<')) {
            const end = src.indexOf('>', i);
            if (end < 0 || !/^[A-Za-z_$][\w$]*$/.test(src.slice(i, end))) invalid('bad group name');
            i = end + 1;
          } else refuse('group modifier (?…');
        }
        const inner = disjunction();
        if (!eat(')')) invalid('unclosed group');
        return inner;
      }
      case 0x29: return invalid('unmatched )');
      case 0x2a: case 0x2b: case 0x3f: return invalid('nothing to repeat');
      case 0x7b: case 0x7d: case 0x5d: return invalid('lone ' + String.fromCharCode(c));
      default: return { t: 'set', r: [c, c] };
    }
  };

  const term = (): RNode => {
    let node = atom();
    for (;;) {
      let min: number;
      let max: number;
      const c = peek();
      if (c === 0x2a) { take(); min = 0; max = Infinity; }
      else if (c === 0x2b) { take(); min = 1; max = Infinity; }
      else if (c === 0x3f) { take(); min = 0; max = 1; }
      else if (c === 0x7b) {
        const save = i;
        take();
        min = quantBound();
        if (min < 0) { i = save; return invalid('lone {'); }
        max = min;
        if (eat(',')) { const m = quantBound(); max = m < 0 ? Infinity : m; }
        if (!eat('}')) invalid('bad {…} quantifier');
        if (max < min) invalid('numbers out of order in {…}');
      } else return node;
      if (node.t === 'bol' || node.t === 'eol') invalid('quantified assertion');
      eat('?'); // lazy: the same language, which is all a constraint or a test needs
      node = { t: 'rep', item: node, min, max };
    }
  };

  const alternative = (): RNode => {
    const items: RNode[] = [];
    while (i < src.length && peek() !== 0x7c && peek() !== 0x29) items.push(term());
    return items.length === 1 ? items[0]! : { t: 'cat', items };
  };

  function disjunction(): RNode {
    const items = [alternative()];
    while (eat('|')) items.push(alternative());
    return items.length === 1 ? items[0]! : { t: 'alt', items };
  }

  const root = disjunction();
  if (i < src.length) invalid('unmatched )');
  return root;
}

export { ANY as ANY_RANGES };
