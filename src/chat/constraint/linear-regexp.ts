// A RegExp stand-in for ajv (its `code.regExp` option) that matches with regex-dfa.ts's automaton:
// time linear in the input, whatever the pattern. ajv otherwise runs `new RegExp(pattern, 'u')`,
// which backtracks: `^([\s\S]*)*\u0001$` against 28 characters held the event loop for 50 s
// (issue 8). An invalid pattern fails to compile, as with RegExp. A valid pattern the automaton
// cannot run (lookaround, backreferences…) compiles, so that
// schemas sent only as documentation (tools the model may never call) stay accepted, but testing
// a string against it throws; constrained decoding refuses such patterns with a 400 before any
// output is checked.

import { dfaFor, dfaTest } from './regex-dfa.ts';
import type { Dfa } from './regex-dfa.ts';
import { RegexRefused } from './regex-parse.ts';

interface RegExpLike { test(s: string): boolean; toString(): string }

function linear(pattern: string, flags: string): RegExpLike {
  // Syntax is judged exactly as before: constructing a RegExp only parses it (no matching, so
  // no backtracking), and an invalid pattern stays a schema error at compile time (a 400).
  new RegExp(pattern, flags);
  let dfa: Dfa | RegexRefused;
  try {
    dfa = dfaFor(pattern);
  } catch (e) {
    if (!(e instanceof RegexRefused)) throw e;
    dfa = e;
  }
  let d = dfa;
  return {
    test(s: string): boolean {
      if (d instanceof RegexRefused && d.transient) d = dfaFor(pattern); // refused under load: try again
      if (d instanceof RegexRefused) throw d;
      return dfaTest(d, s);
    },
    // ajv keys its compiled patterns by this string.
    toString: () => `/${pattern}/${flags}`,
  };
}

/** ajv's RegExpEngine shape: the function plus a `code` name (used only for standalone code). */
export const linearRegExp = Object.assign(linear, { code: 'hearthLinearRegExp' });
