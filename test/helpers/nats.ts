// Test helpers for the cluster: a real nats-server per test file (free port, auth on), real
// `hearth worker` processes, and a small greedy driver for a Pipeline.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNatsServerBinary, startNatsServer, type NatsServerHandle } from '../../src/cluster/index.ts';
import { GREEDY } from '../../src/sampling/types.ts';
import type { Pipeline } from '../../src/scheduler/types.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const stories260k = path.resolve(repoRoot, '../shared/models/stories260k');

interface Tap {
  teardown(fn: () => unknown): void;
}

/** null when nats-server is not installed (tests skip with this reason). */
export function natsMissing(): string | false {
  return findNatsServerBinary() === null ? 'nats-server is not installed' : false;
}

export async function withNats(t: Tap, opts: { token?: string; maxPayload?: number; jetstream?: boolean } = {}): Promise<NatsServerHandle & { token: string }> {
  const token = opts.token ?? `tok-${Math.random().toString(36).slice(2)}`;
  const s = await startNatsServer({ token, ...(opts.maxPayload !== undefined ? { maxPayload: opts.maxPayload } : {}), ...(opts.jetstream === true ? { jetstream: true } : {}) });
  t.teardown(() => s.stop());
  return { ...s, token };
}

export interface WorkerProc {
  readonly proc: ChildProcess;
  /** stderr so far (pino JSON lines). */
  stderr(): string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** Spawns `node bin/hearth.js worker …` (a real process); killed at teardown. */
export function spawnWorker(t: Tap, args: readonly string[], env: Record<string, string> = {}): WorkerProc {
  const proc = spawn(process.execPath, [path.join(repoRoot, 'bin/hearth.js'), 'worker', ...args], {
    cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HEARTH_LOG_LEVEL: 'info', ...env },
  });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); if (err.length > 200_000) err = err.slice(-100_000); });
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, stderr: () => err, exited, kill: (s = 'SIGKILL') => { proc.kill(s); } };
}

/** Polls `pred` every 50 ms until true or timeout (then throws with `what`). */
export async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Greedy decoding straight over a Pipeline: one prefill step, then one step per token. */
export async function greedy(p: Pipeline, seq: string, prompt: Int32Array, maxTokens: number): Promise<number[]> {
  const out: number[] = [];
  let r = await p.step({ seq, pos: 0, tokens: prompt, promptLen: prompt.length, sampling: GREEDY, wantToken: true, wantLogits: false });
  let pos = prompt.length;
  for (let i = 0; i < maxTokens; i++) {
    const tok = r.token?.token;
    if (tok === undefined) throw new Error('no token');
    out.push(tok);
    if (i === maxTokens - 1) break;
    r = await p.step({ seq, pos, tokens: Int32Array.of(tok), promptLen: prompt.length, sampling: GREEDY, wantToken: true, wantLogits: false });
    pos++;
  }
  p.free(seq);
  return out;
}
