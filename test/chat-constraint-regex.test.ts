// The pattern automaton (regex-parse.ts + regex-dfa.ts) against the JavaScript engine: on benign
// patterns and seeded random strings it must answer exactly what `new RegExp(p, 'u').test(s)`
// answers (JSON Schema semantics: unanchored, `u` flag), and it must refuse what it cannot run.
import t from 'tap';
import { compileDfa, dfaTest } from '../src/chat/constraint/regex-dfa.ts';
import { RegexRefused } from '../src/chat/constraint/regex-parse.ts';
import { buildPatternTable, remAt } from '../src/chat/constraint/pattern-table.ts';

const PATTERNS = [
  '^[a-z]+$', 'a$', '^b', 'ab|cd', '^(ab|a)(bc|c)$', '^\\d{3}-\\d{2,4}$', 'colou?r', '^(foo|bar)+(?:baz)?$',
  '^[^abc]{2,3}$', '^$', 'x*', '^a*?b+?$', '^[\\w.-]+@[a-z]+\\.[a-z]{2,}$', '^\\s*\\S+\\s*$', '[\\u00e9-\\u00ff]',
  '^.{2}$', '^[a\\-z]$', '^\\x41\\u0042\\u{43}$', '^(?<y>\\d{4})-(?<m>0[1-9]|1[0-2])$', '(a|b)*abb', '^[^]$',
  '^\\uD83D\\uDE00?$', '^[\\d\\s]+$', '^(a{2}){1,2}$', '^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/\\^\\$\\\\$', '^\\t\\n\\r\\f\\v\\0$',
  '^[\\b]$', '^\\cJ$', '^(?:(a)|b)*$', '^(a|)+$', '^([\\s\\S]*)*\\u0001$',
];
const ALPHABET = ['a', 'b', 'c', 'd', 'r', 'o', 'u', 'l', 'f', 'z', '0', '1', '9', '-', '.', '@', ' ', '\n', '\u0001', 'é', '😀', '_', 'A', 'x'];

t.test('same answers as RegExp(u) on seeded random strings', (t) => {
  let s = 12345;
  const rnd = (n: number): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n);
  let compared = 0;
  for (const p of PATTERNS) {
    const dfa = compileDfa(p);
    const re = new RegExp(p, 'u');
    let bad = '';
    for (let k = 0; k < 400 && bad === ''; k++) {
      let str = '';
      const len = rnd(9);
      for (let i = 0; i < len; i++) str += ALPHABET[rnd(ALPHABET.length)]!;
      if (dfaTest(dfa, str) !== re.test(str)) bad = str;
      compared++;
    }
    t.equal(bad, '', `${p}: agrees (${dfa.nStates} states)`);
  }
  // Strings made to match, which random ones rarely do.
  const hits: [string, string][] = [['^[\\w.-]+@[a-z]+\\.[a-z]{2,}$', 'a.b-c@host.org'], ['^(?<y>\\d{4})-(?<m>0[1-9]|1[0-2])$', '2024-11'], ['^\\x41\\u0042\\u{43}$', 'ABC'], ['^\\uD83D\\uDE00?$', '\u{1F600}'], ['^\\t\\n\\r\\f\\v\\0$', '\t\n\r\f\v\0']];
  for (const [p, str] of hits) t.ok(dfaTest(compileDfa(p), str) && new RegExp(p, 'u').test(str), `${p} matches ${JSON.stringify(str)}`);
  t.ok(compared > 5000);
  t.end();
});

t.test('constructs a backtracking engine needs are refused, by name', (t) => {
  const refused: [string, RegExp][] = [
    ['(a)\\1', /backreference/], ['(?<n>a)\\k<n>', /backreference/], ['(?=a)', /lookahead/], ['(?!a)', /lookahead/],
    ['(?<=a)b', /lookbehind/], ['(?<!a)b', /lookbehind/], ['\\bx', /word boundary/], ['\\Bx', /word boundary/],
    ['\\p{L}', /property/], ['a{2,1}', /invalid/], ['(a', /invalid/], ['a)', /invalid/], ['*a', /invalid/], ['[z-a]', /invalid/],
    ['\\q', /invalid/], ['a{1,50000}', /large/], ['(a|b)*a(a|b){16}', /complex/],
  ];
  for (const [p, why] of refused) {
    let err: unknown;
    try { compileDfa(p); } catch (e) { err = e; }
    t.ok(err instanceof RegexRefused, `${p}: refused`);
    t.match((err as Error).message, why, `${p}: ${(err as Error).message}`);
  }
  t.end();
});

t.test('a large maxLength reads an unbounded table plus an exact tail, with the same answers', (t) => {
  let diffs = 0;
  let checked = 0;
  for (const [p, min, max] of [['^[a-c]*(ab|ba)[a-c]$', 0, 40], ['x(yz)*', 3, 31], ['^([0-9]{3}-)*[0-9]$', 5, 60], ['a|b{4}|c{7}', 0, 60]] as const) {
    const dfa = compileDfa(p);
    const split = buildPatternTable(dfa, min, max, '');
    const exact = buildPatternTable(dfa, min, max, '', false);
    t.ok(split.tail !== null, `${p}: split (${dfa.nStates} states, max ${max})`);
    for (let d = 0; d < dfa.nStates; d++) {
      for (let c = 0; c <= max + 2; c++) {
        checked++;
        if (remAt(split, d, c) !== remAt(exact, d, c)) diffs++;
      }
    }
  }
  t.equal(diffs, 0, `${checked} (state, count) pairs agree`);
  t.end();
});
