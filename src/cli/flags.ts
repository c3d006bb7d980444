// Command-line flags: node:util's parseArgs, with the mistakes people make turned into one line
// that says what is wrong and the closest flag (like git's "did you mean"), never a stack trace.
// main.ts adds "see `hearth CMD --help`" to every HEARTH_ERR_USAGE.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { HearthError } from '../errors/index.ts';

/** Edit distance (Levenshtein, two rows): small inputs, a handful of candidates. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The candidate closest to `word` when it is plausibly a typo of it (or a prefix of it). */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 0.5 : editDistance(word, c);
    if (d < bestD) { bestD = d; best = c; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

const NEGATIVE_NUMBER = /^-\d/;

/**
 * parseArgs, strict, with two differences: `--workers -1` means the value -1 (parseArgs would call
 * it ambiguous; the config check then says what range is allowed), and every parse error is a
 * HEARTH_ERR_USAGE naming the flag and the closest known one.
 */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const options = config.options ?? {};
  const args = [...(config.args ?? [])];
  for (let i = 0; i < args.length - 1; i++) {
    const a = args[i] as string;
    const next = args[i + 1] as string;
    const name = a.startsWith('--') ? a.slice(2) : null;
    if (name !== null && options[name]?.type === 'string' && NEGATIVE_NUMBER.test(next)) {
      args.splice(i, 2, `${a}=${next}`);
    }
  }
  try {
    return parseArgs({ ...config, args } as T);
  } catch (e) {
    throw usageError(e as Error & { code?: string }, Object.keys(options), options);
  }
}

function usageError(e: Error & { code?: string }, names: readonly string[], options: NonNullable<ParseArgsConfig['options']>): Error {
  const quoted = /'([^']+)'/.exec(e.message)?.[1] ?? '';
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const given = quoted.replace(/^-+/, '').split('=')[0] ?? '';
      const near = closest(given, names);
      const flag = quoted.startsWith('--') || quoted.length > 2 ? `--${given}` : quoted;
      return new HearthError('HEARTH_ERR_USAGE', [`unknown flag ${flag}${near === null ? '' : `; did you mean --${near}?`}`]);
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = /--[\w-]+/.exec(e.message)?.[0] ?? quoted.split(' ')[0] ?? 'a flag';
      const name = flag.replace(/^-+/, '');
      const takesValue = options[name]?.type === 'string';
      return new HearthError('HEARTH_ERR_USAGE', [takesValue ? `${flag} needs a value (e.g. ${flag} VALUE, or ${flag}=-VALUE for one that starts with "-")` : `${flag} takes no value`]);
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new HearthError('HEARTH_ERR_USAGE', [`unexpected argument "${quoted}" (flags start with --)`]);
    default:
      return e;
  }
}
