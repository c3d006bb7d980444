// Drives the real `hearth` command as a user does: child processes of `node bin/hearth.js`, their
// output, their exit codes, signals to the whole process group (what Ctrl-C in a terminal does),
// and the processes they start (read from /proc).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './hearth.ts';

interface Tap {
  teardown(fn: () => unknown): void;
}

export const BIN = path.join(repoRoot, 'bin/hearth.js');

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Exceeded the time limit (and was killed). */
  readonly timedOut: boolean;
}

/** Runs `hearth ARGS` to completion (killed after timeoutMs). */
export function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, env: { ...process.env, HEARTH_LOG_PRETTY: 'false', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // Give the pipes a moment to drain.
      setTimeout(() => resolve({ code, signal, stdout, stderr, timedOut }), 50);
    });
  });
}

export function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), sig);
  } catch {
    /* gone */
  }
}

/** A fresh HEARTH_HOME (state dir: token, nats-server folder; demo checkpoint), removed at teardown. */
export function tempHome(t: Tap, prefix = 'hearth-cli-'): string {
  const home = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

export interface UpProcess {
  readonly child: ChildProcess;
  readonly origin: string;
  readonly home: string;
  /** Everything printed so far (stdout + stderr). */
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Pid of the `hearth up` node process itself (under `npm start`, npm's grandchild). */
  upPid(): number;
  /** Waits until output() matches re (or throws after timeoutMs). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

/**
 * `hearth up ARGS` in its own process group (like a shell job), in a fresh HEARTH_HOME; resolves
 * once it printed its URL. `ready` also waits for GET /ready. Killed (whole group) at teardown.
 */
export async function startUp(t: Tap, args: readonly string[], opts: { env?: Record<string, string>; ready?: boolean; npmStart?: boolean; home?: string } = {}): Promise<UpProcess> {
  // `home`: the state dir of an earlier start (a restart of the same `hearth up`).
  const home = opts.home ?? tempHome(t, 'hearth-up-');
  // `npm start -- ARGS` is what the README tells people to run (npm forwards signals again).
  const [cmd, argv] = opts.npmStart === true ? ['npm', ['start', '--', '--port', '0', ...args]] : [process.execPath, [BIN, 'up', '--port', '0', ...args]];
  const child = spawn(cmd, argv, {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HEARTH_HOME: home, HEARTH_LOG_PRETTY: 'false', HEARTH_LOG_LEVEL: 'info', HEARTH_WORKER_THREADS: '1', ...opts.env },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    // Workers and nats-server live in their own groups: make sure none outlives the test.
    for (const p of processesUnder(home)) {
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
  const waitFor = async (re: RegExp, timeoutMs = 120_000): Promise<RegExpExecArray> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(out);
      if (m !== null) return m;
      if (Date.now() > until) throw new Error(`no ${re} in ${timeoutMs} ms:\n${out.slice(-4000)}`);
      if (child.exitCode !== null && re.exec(out) === null) throw new Error(`hearth up exited (${child.exitCode}) without ${re}:\n${out.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const m = await waitFor(/OpenAI API at (http:\/\/\S+?)\/v1\b/);
  const origin = m[1] as string;
  if (opts.ready === true) await waitReady(origin, 120_000, () => out);
  const upPid = (): number => {
    if (opts.npmStart !== true) return child.pid as number;
    // argv[0] is node (npm runs `sh -c 'node bin/hearth.js up …'`); comm is no help: Node 24 names it MainThread.
    const p = processesUnder(home).find((x) => /^(\S*\/)?node\s/.test(x.cmdline) && x.cmdline.includes('bin/hearth.js up'));
    if (p === undefined) throw new Error('no hearth up process under npm start');
    return p.pid;
  };
  return { child, origin, home, output: () => out, exited, upPid, waitFor };
}

export async function waitReady(origin: string, timeoutMs: number, log: () => string = () => ''): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await fetch(`${origin}/ready`).catch(() => null);
    if (r?.status === 200) return;
    if (Date.now() > until) throw new Error(`${origin} not ready after ${timeoutMs} ms:\n${log().slice(-4000)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** argv, NUL-separated in /proc, joined by spaces here. */
  readonly cmdline: string;
}

/** Every process visible in /proc (Linux). */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // comm is in parentheses and may hold spaces: the fields after the last ')' are fixed.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
      out.push({ pid: Number(name), ppid, comm, cmdline });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

export function childrenOf(pid: number): ProcInfo[] {
  return processes().filter((p) => p.ppid === pid);
}

/** Processes whose command line or environment mentions `dir` (what a test's hearth started). */
export function processesUnder(dir: string): ProcInfo[] {
  return processes().filter((p) => {
    if (p.pid === process.pid) return false;
    if (p.cmdline.includes(dir)) return true;
    try {
      return readFileSync(`/proc/${p.pid}/environ`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  });
}
