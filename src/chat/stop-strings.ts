// Incremental stop-string matching over streamed text deltas. Pure: text in, text out, no tokens.
// Text that could still turn out to be the start of a stop string is held back, so a stop string is
// never emitted (not even in part) however many tokens it spans. OpenAI's `stop` semantics: the
// completion ends as soon as a stop string is complete, right before it (the stop is not included);
// when one delta completes several, the one that starts earliest wins.

export interface StopPush {
  /** Text that is now safe to send. */
  readonly emit: string;
  /** True once a stop string was found; emit then holds the text before it, and later pushes emit nothing. */
  readonly stopped: boolean;
  /** The stop string that ended the text (null while running or when stopped by nothing). */
  readonly stop: string | null;
}

export interface StopMatcher {
  push(text: string): StopPush;
  /** End of generation without a stop string: the held-back text (empty after a stop). */
  flush(): string;
}

export function createStopMatcher(stops: readonly string[]): StopMatcher {
  const list = [...new Set(stops.filter((s) => s.length > 0))];
  const longest = list.reduce((m, s) => Math.max(m, s.length), 0);
  let held = '';
  let stopped = false;
  const done: StopPush = { emit: '', stopped: true, stop: null };

  /** Length of the longest suffix of `s` that is a proper prefix of a stop string. */
  const partialTail = (s: string): number => {
    for (let k = Math.min(longest - 1, s.length); k > 0; k--) {
      const tail = s.slice(s.length - k);
      if (list.some((stop) => stop.startsWith(tail))) return k;
    }
    return 0;
  };

  return {
    push(text) {
      if (stopped) return done;
      if (list.length === 0) return { emit: text, stopped: false, stop: null };
      const buf = held + text;
      // `held` contains no whole stop string (else we would have stopped), so any match ends in the
      // new text; searching the short held part again is cheap and keeps this obviously right.
      let at = -1;
      let which: string | null = null;
      for (const s of list) {
        const i = buf.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) { at = i; which = s; }
      }
      if (at >= 0) {
        stopped = true;
        held = '';
        return { emit: buf.slice(0, at), stopped: true, stop: which };
      }
      const keep = partialTail(buf);
      held = buf.slice(buf.length - keep);
      return { emit: buf.slice(0, buf.length - keep), stopped: false, stop: null };
    },
    flush() {
      const out = stopped ? '' : held;
      held = '';
      return out;
    },
  };
}
