// Starts a private nats-server for `hearth up` and for tests: loopback only, auth on, on a free
// port chosen by the server itself (`port: -1`) and read back from its ports file — no
// find-a-free-port race. Follows nats.js's own test launcher (nst/src/launcher.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HearthError } from '../errors/index.ts';

export interface NatsServerOptions {
  readonly token: string;
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
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'];

/** HEARTH_NATS_SERVER, then PATH, then the usual install places; null when there is none. */
export function findNatsServerBinary(): string | null {
  const env = process.env['HEARTH_NATS_SERVER'];
  const dirs = (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => d !== '');
  const all = [...(env !== undefined && env !== '' ? [env] : []), ...dirs.map((d) => path.join(d, 'nats-server')), ...CANDIDATES];
  for (const p of all) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return null;
}

// Servers we started: killed if this process exits without stopping them (a failed test run
// must not leave nats-servers behind).
const live = new Set<ChildProcess>();
process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const binary = opts.binary ?? findNatsServerBinary();
  if (binary === null) throw new HearthError('HEARTH_ERR_NATS_SERVER', ['no nats-server binary found (install it, e.g. apt-get install nats-server, or set HEARTH_NATS_SERVER)']);
  const dir = mkdtempSync(path.join(tmpdir(), 'hearth-nats-'));
  const host = opts.host ?? '127.0.0.1';
  // The token goes in a 0600 config file, not argv, where `ps` would show it to every user.
  const conf = [
    `listen: "${host}:${opts.port !== undefined && opts.port > 0 ? opts.port : -1}"`,
    `ports_file_dir: ${JSON.stringify(dir)}`,
    `authorization { token: ${JSON.stringify(opts.token)} }`,
    ...(opts.maxPayload !== undefined ? [`max_payload: ${opts.maxPayload}`] : []),
    ...(opts.jetstream === true ? [`jetstream { store_dir: ${JSON.stringify(opts.storeDir ?? path.join(dir, 'js'))} }`] : []),
  ].join('\n');
  const confFile = path.join(dir, 'nats.conf');
  writeFileSync(confFile, conf + '\n', { mode: 0o600 });

  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { if (stderr.length < 8000) stderr += d.toString(); });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; live.delete(child); resolve(); }));

  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(t);
    }
    cleanup();
  };

  try {
    const port = await waitForPort(dir, () => exited, () => stderr);
    await probe(host === '0.0.0.0' ? '127.0.0.1' : host, port);
    const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host;
    return { url: `nats://${urlHost}:${port}`, port, pid: child.pid ?? -1, stop };
  } catch (e) {
    await stop();
    throw e;
  }
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
