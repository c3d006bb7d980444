// hearth's per-user state: the generated cluster token (so a join line survives restarts) and the
// running nats-server's folder (its 0600 config holds the token: it lives here, in a 0700 folder
// of the user, never in a shared /tmp, and is removed on stop; a crash leaves it only here, and
// the next `hearth up` removes it).

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** $HEARTH_HOME, else $XDG_STATE_HOME/hearth, else ~/.local/state/hearth (XDG base dirs). */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = env['HEARTH_HOME'];
  if (home !== undefined && home !== '') return path.resolve(home);
  const xdg = env['XDG_STATE_HOME'];
  return path.join(xdg !== undefined && xdg !== '' ? xdg : path.join(os.homedir(), '.local', 'state'), 'hearth');
}

function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The cluster token `hearth up` generated before (0600 file), or a new one written there. */
export function persistedToken(dir: string = stateDir()): { token: string; file: string } {
  const file = path.join(ensureDir(dir), 'cluster-token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 16) return { token, file };
  }
  const token = randomBytes(24).toString('hex');
  try {
    writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
  } catch {
    // Another `hearth up` wrote it first (or a short one is there): the file wins if usable.
    const there = readFileSync(file, 'utf8').trim();
    if (there.length >= 16) return { token: there, file };
    writeFileSync(file, token + '\n', { mode: 0o600 });
  }
  return { token, file };
}

const RUN_PREFIX = 'nats-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The nats-server a SIGKILLed `hearth up` left running (its pid file, checked against its
 *  command line so a reused pid is never signalled). */
function stopOrphan(folder: string): void {
  try {
    const pid = Number(readFileSync(path.join(folder, 'nats.pid'), 'utf8').trim());
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmd.includes(path.join(folder, 'nats.conf'))) process.kill(pid, 'SIGTERM');
  } catch {
    /* no pid file, no such process, or not Linux: nothing to stop */
  }
}

/**
 * The folder for this process's nats-server (run/nats-PID). Folders of processes that are gone
 * (a crashed or SIGKILLed `hearth up`) are removed first, and their nats-server stopped.
 */
export function natsRunDir(dir: string = stateDir()): string {
  const run = ensureDir(path.join(dir, 'run'));
  for (const name of readdirSync(run)) {
    const pid = Number(name.slice(RUN_PREFIX.length));
    if (name.startsWith(RUN_PREFIX) && Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      stopOrphan(path.join(run, name));
      rmSync(path.join(run, name), { recursive: true, force: true });
    }
  }
  return path.join(run, `${RUN_PREFIX}${process.pid}`);
}
