// Starts a private nats-server for `hearth up` and for tests: loopback only, auth on, on a free
// port chosen by the server itself (`port: -1`) and read back from its ports file — no
// find-a-free-port race. Follows nats.js's own test launcher (nst/src/launcher.ts).
// With `supervise`, a server that dies is started again on the same port with the same config
// (clients reconnect by themselves: nats.js retries forever, see src/bus/nats-bus.ts), and each
// restart is logged. Its folder (0600 config with the token) is removed on stop and at exit.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SILENT_LOG, type Log } from '../bus/types.ts';
import { HearthError } from '../errors/index.ts';

/** One user of the server's `authorization { users = [...] }` (nats-server's plain-config auth,
 *  reloadable with SIGHUP: https://docs.nats.io/running-a-nats-service/configuration/securing_nats/authorization).
 *  Either user + password or an nkey; without permissions the user may do everything. */
export interface NatsUser {
  readonly user?: string;
  readonly password?: string;
  /** Public user nkey ("U…"): the client proves it holds the seed by signing the server's nonce. */
  readonly nkey?: string;
  /** Allow-lists: everything else is refused by the server (publish: dropped + -ERR; subscribe: refused). */
  readonly permissions?: { readonly publish: readonly string[]; readonly subscribe: readonly string[] };
}

/** TLS for the client port: PEM files (src/trust/ca.ts makes them for `hearth up`). */
export interface NatsServerTls {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface NatsServerOptions {
  /** Shared token (`authorization { token }`); ignored when `users` is given. */
  readonly token: string;
  /** Per-user credentials and permissions instead of the one token (issue 14). */
  readonly users?: readonly NatsUser[];
  readonly tls?: NatsServerTls;
  /** Client port; 0 or absent = a free one. */
  readonly port?: number;
  /** Listen address (default 127.0.0.1; use 0.0.0.0 for workers on the LAN). */
  readonly host?: string;
  readonly jetstream?: boolean;
  readonly storeDir?: string;
  /** Binary to run (default: findNatsServerBinary()). */
  readonly binary?: string;
  /** Largest message the server accepts (bytes; nats default 1 MB). */
  readonly maxPayload?: number;
  /** Folder for the config and ports file (created 0700, removed on stop). Default: a new folder
   *  under the OS temp dir. `hearth up` keeps it in the user's state dir instead. */
  readonly dir?: string;
  /** Restart the server (same port, same config) whenever it exits unexpectedly. */
  readonly supervise?: boolean;
  /** Run it in its own process group (and session), so a terminal's Ctrl-C reaches only us and
   *  the bus stays up while we drain. Its pid is kept in DIR/nats.pid: if we are SIGKILLed, the
   *  next start finds it there (see src/cli/state-dir.ts). */
  readonly detached?: boolean;
  /** Where restarts are reported. */
  readonly log?: Log;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  /** Pid of the running server (changes when a supervised server is restarted). */
  readonly pid: number;
  /** How many times a supervised server was restarted. */
  readonly restarts: number;
  /** Replaces the user list and reloads the server (SIGHUP); resolves once the server logged the
   *  reload — from then on every connection runs under the new permissions, and a connection
   *  whose user is gone has been closed by the server. */
  setUsers(users: readonly NatsUser[]): Promise<void>;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'];

/**
 * HEARTH_NATS_SERVER when set (only it: an explicit choice is never second-guessed), else PATH,
 * then the usual install places; null when there is none.
 */
export function findNatsServerBinary(): string | null {
  const env = process.env['HEARTH_NATS_SERVER'];
  const dirs = (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => d !== '');
  const all = env !== undefined && env !== '' ? [env] : [...dirs.map((d) => path.join(d, 'nats-server')), ...CANDIDATES];
  for (const p of all) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return null;
}

// Servers we started and their folders: killed and removed if this process exits without
// stopping them (a failed test run or a crashed `hearth up` must not leave them behind).
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function usersText(users: readonly NatsUser[]): string {
  const one = (u: NatsUser): string => {
    const f: string[] = [];
    if (u.user !== undefined) f.push(`user: ${JSON.stringify(u.user)}`);
    if (u.password !== undefined) f.push(`password: ${JSON.stringify(u.password)}`);
    if (u.nkey !== undefined) f.push(`nkey: ${JSON.stringify(u.nkey)}`);
    if (u.permissions !== undefined) {
      f.push(`permissions: { publish: { allow: ${JSON.stringify(u.permissions.publish)} }, subscribe: { allow: ${JSON.stringify(u.permissions.subscribe)} } }`);
    }
    return `    { ${f.join(', ')} }`;
  };
  // timeout: seconds a client has to authenticate after the server's INFO (default 2): signing
  // the nonce with an nkey in a freshly started Node process on a loaded machine can take longer.
  return `authorization {\n  timeout: 10\n  users = [\n${users.map(one).join('\n')}\n  ]\n}`;
}

function configText(o: NatsServerOptions, host: string, port: number, dir: string, users: readonly NatsUser[] | undefined): string {
  return [
    `listen: "${host}:${port > 0 ? port : -1}"`,
    `ports_file_dir: ${JSON.stringify(dir)}`,
    users !== undefined ? usersText(users) : `authorization { token: ${JSON.stringify(o.token)} }`,
    ...(o.tls !== undefined ? [`tls { cert_file: ${JSON.stringify(o.tls.certFile)}, key_file: ${JSON.stringify(o.tls.keyFile)}, timeout: 5 }`] : []),
    ...(o.maxPayload !== undefined ? [`max_payload: ${o.maxPayload}`] : []),
    ...(o.jetstream === true ? [`jetstream { store_dir: ${JSON.stringify(o.storeDir ?? path.join(dir, 'js'))} }`] : []),
  ].join('\n') + '\n';
}

interface Proc {
  readonly child: ChildProcess;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
  stderr: string;
  /** Called with each chunk of its stderr (the reload acknowledgement is read from there). */
  readonly listeners: Set<(chunk: string) => void>;
}

function spawnServer(binary: string, confFile: string, detached: boolean): Proc {
  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'], detached });
  live.add(child);
  if (detached && child.pid !== undefined) writeFileSync(path.join(path.dirname(confFile), 'nats.pid'), `${child.pid}\n`, { mode: 0o600 });
  const p: Proc = {
    child,
    exited: false,
    stderr: '',
    listeners: new Set(),
    exit: new Promise((resolve) => child.once('exit', (code, signal) => { p.exited = true; live.delete(child); resolve({ code, signal }); })),
  };
  child.once('error', () => undefined); // reported through 'exit'
  child.stderr?.on('data', (d: Buffer) => {
    const text = d.toString();
    if (p.stderr.length < 8000) p.stderr += text;
    for (const l of p.listeners) l(text);
  });
  return p;
}

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const binary = opts.binary ?? findNatsServerBinary();
  if (binary === null) throw new HearthError('HEARTH_ERR_NATS_SERVER', ['no nats-server binary found (install it, e.g. apt-get install nats-server, or set HEARTH_NATS_SERVER)']);
  let dir: string;
  if (opts.dir !== undefined) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    dir = opts.dir;
  } else {
    dir = mkdtempSync(path.join(tmpdir(), 'hearth-nats-'));
  }
  dirs.add(dir);
  const log = opts.log ?? SILENT_LOG;
  const host = opts.host ?? '127.0.0.1';
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  // The token goes in a 0600 config file, not argv, where `ps` would show it to every user.
  const confFile = path.join(dir, 'nats.conf');
  let users = opts.users;
  writeFileSync(confFile, configText(opts, host, opts.port ?? 0, dir, users), { mode: 0o600 });

  let proc = spawnServer(binary, confFile, opts.detached === true);
  let stopping = false;
  let restarts = 0;
  let port = 0;
  const cleanup = (): void => { rmSync(dir, { recursive: true, force: true }); dirs.delete(dir); };
  const stop = async (): Promise<void> => {
    stopping = true;
    if (!proc.exited) {
      proc.child.kill('SIGTERM');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), 3000);
      await proc.exit;
      clearTimeout(t);
    }
    cleanup();
  };

  /** Restarts until one comes up (the port may be held for a moment by the dying process). */
  const supervise = (p: Proc): void => {
    void p.exit.then(async ({ code, signal }) => {
      if (stopping) return;
      log.warn({ code, signal, port, stderr: p.stderr.trim().split('\n').slice(-2).join(' | ') }, 'nats-server exited unexpectedly; restarting it on the same port with the same config');
      for (let attempt = 1; !stopping; attempt++) {
        for (const f of readdirSync(dir)) if (f.endsWith('.ports')) unlinkSync(path.join(dir, f));
        const next = spawnServer(binary, confFile, opts.detached === true);
        proc = next;
        try {
          await waitForPort(dir, () => next.exited, () => next.stderr);
          await probe(urlHost, port);
          restarts++;
          log.warn({ port, pid: next.child.pid, restarts }, 'nats-server restarted; clients reconnect by themselves');
          supervise(next);
          return;
        } catch (e) {
          if (!next.exited) next.child.kill('SIGKILL');
          await next.exit;
          if (stopping) return;
          log.error({ attempt, err: (e as Error).message }, 'nats-server did not come back; trying again');
          await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** attempt)));
        }
      }
    });
  };

  try {
    port = await waitForPort(dir, () => proc.exited, () => proc.stderr);
    await probe(urlHost, port);
  } catch (e) {
    await stop();
    throw e;
  }
  // From now on the port is fixed: a restart must come back where the clients look for it.
  writeFileSync(confFile, configText(opts, host, port, dir, users), { mode: 0o600 });
  if (opts.supervise === true) supervise(proc);
  // Reloads run one after another: each writes the latest list, signals, and waits for the ack.
  let reloads: Promise<void> = Promise.resolve();
  const setUsers = (next: readonly NatsUser[]): Promise<void> => {
    users = next;
    const run = reloads.then(() => reload());
    reloads = run.catch(() => undefined);
    return run;
  };
  const reload = async (): Promise<void> => {
    if (stopping) return;
    writeFileSync(confFile, configText(opts, host, port, dir, users), { mode: 0o600 });
    const p = proc;
    if (p.exited) return; // a supervised restart reads the new file
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      const done = (err: Error | null): void => { clearTimeout(timer); p.listeners.delete(on); if (err === null) resolve(); else reject(err); };
      // nats-server logs "Reloaded server configuration" when the new config is in force, or
      // "Failed to reload server configuration: …" (server/signal.go).
      const on = (chunk: string): void => {
        seen = (seen + chunk).slice(-4000);
        if (/Reloaded server configuration/.test(seen)) done(null);
        else if (/Failed to reload/.test(seen)) done(new HearthError('HEARTH_ERR_NATS_SERVER', [`config reload failed: ${seen.trim().split('\n').slice(-1)[0] ?? ''}`]));
      };
      const timer = setTimeout(() => done(new HearthError('HEARTH_ERR_NATS_SERVER', ['did not acknowledge a config reload within 10 s'])), 10_000);
      p.listeners.add(on);
      p.child.kill('SIGHUP');
    });
  };
  return {
    url: `nats://${urlHost}:${port}`,
    port,
    get pid() { return proc.child.pid ?? -1; },
    get restarts() { return restarts; },
    setUsers,
    stop,
  };
}

async function waitForPort(dir: string, exited: () => boolean, stderr: () => string): Promise<number> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited()) throw new HearthError('HEARTH_ERR_NATS_SERVER', [`exited at start: ${stderr().trim().split('\n').slice(-3).join(' | ')}`]);
    const f = readdirSync(dir).find((n) => n.endsWith('.ports'));
    if (f !== undefined) {
      try {
        const ports = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { nats?: string[] };
        const u = ports.nats?.[0];
        if (u !== undefined) return Number(new URL(u).port);
      } catch { /* written but not complete yet */ }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new HearthError('HEARTH_ERR_NATS_SERVER', ['did not report its port within 10 s']);
}

/** The server accepts TCP and sends its INFO line: it is ready for clients. */
async function probe(host: string, port: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ host, port });
      s.setTimeout(1000);
      s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('INFO')); });
      s.once('error', () => { s.destroy(); resolve(false); });
      s.once('timeout', () => { s.destroy(); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new HearthError('HEARTH_ERR_NATS_SERVER', [`not accepting connections on ${host}:${port}`]);
    await new Promise((r) => setTimeout(r, 50));
  }
}
