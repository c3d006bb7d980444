// Download progress on stderr: a redrawn bar (bytes, rate, ETA) on a terminal, plain lines (one
// per file and every 10% or 10 s) when stderr is a pipe or a log, so CI logs stay readable.
import { formatBytes, formatDuration } from './format.ts';

export interface ProgressSink {
  /** Total bytes still to fetch in this run (bytes already on disk excluded). */
  start(total: number, files: number): void;
  fileStart(name: string, size: number): void;
  bytes(n: number): void;
  fileDone(name: string, skipped: boolean): void;
  finish(): void;
}

interface Writable {
  write(s: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const RATE_WINDOW_MS = 5000;
const TTY_REDRAW_MS = 100;
const PLAIN_EVERY_MS = 10_000;

export function createProgressBar(out: Writable = process.stderr, now: () => number = Date.now): ProgressSink {
  const tty = out.isTTY === true;
  let total = 0;
  let done = 0;
  let file = '';
  let t0 = now();
  let lastDraw = 0;
  let lastPlainPct = 0;
  let lastPlainAt = 0;
  const samples: [number, number][] = [];

  const rate = (): number => {
    const t = now();
    samples.push([t, done]);
    while (samples.length > 2 && t - (samples[0] as [number, number])[0] > RATE_WINDOW_MS) samples.shift();
    const [ts, ds] = samples[0] as [number, number];
    // Early on, average since start: the window is too short to mean anything.
    return t - ts < 500 ? (t - t0 > 0 ? (done / (t - t0)) * 1000 : 0) : ((done - ds) / (t - ts)) * 1000;
  };
  const line = (): string => {
    const r = rate();
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100;
    const eta = r > 0 ? (total - done) / r : Number.NaN;
    const stats = `${pct.toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)}  ${formatBytes(r)}/s  ETA ${formatDuration(eta)}`;
    if (!tty) return `${file}: ${stats}`;
    const width = Math.max(10, Math.min(30, (out.columns ?? 80) - stats.length - file.length - 6));
    const fill = Math.round((pct / 100) * width);
    return `${file} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${stats}`;
  };
  const draw = (force: boolean): void => {
    const t = now();
    if (tty) {
      if (!force && t - lastDraw < TTY_REDRAW_MS) return;
      lastDraw = t;
      out.write(`\r\x1b[2K${line()}`);
      return;
    }
    const pct = total > 0 ? Math.floor((done / total) * 10) : 10;
    if (force || pct > lastPlainPct || t - lastPlainAt >= PLAIN_EVERY_MS) {
      lastPlainPct = pct;
      lastPlainAt = t;
      out.write(`${line()}\n`);
    }
  };

  return {
    start(n, files) {
      total = n;
      done = 0;
      t0 = now();
      lastPlainAt = t0;
      out.write(`downloading ${files} file${files === 1 ? '' : 's'}, ${formatBytes(n)}\n`);
    },
    fileStart(name) {
      file = name;
      draw(true);
    },
    bytes(n) {
      done += n;
      draw(false);
    },
    fileDone(name, skipped) {
      if (skipped) {
        if (tty) out.write('\r\x1b[2K');
        out.write(`${name}: already complete\n`);
        return;
      }
      draw(true);
      if (tty) out.write('\n');
    },
    finish() {
      const secs = (now() - t0) / 1000;
      out.write(`done: ${formatBytes(done)} in ${formatDuration(secs)}${secs > 0 ? ` (${formatBytes(done / secs)}/s)` : ''}\n`);
    },
  };
}

export const silentProgress: ProgressSink = { start() {}, fileStart() {}, bytes() {}, fileDone() {}, finish() {} };
