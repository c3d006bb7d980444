// `hearth up`: everything on this machine in one command — a private nats-server (auth on,
// supervised), the gateway, and N local worker processes — and the line another device runs to join.
// Whatever fails at start, what was started is stopped again and the error is one line.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { MemoryHub, NatsBus, type Bus } from '../bus/index.ts';
import { findNatsServerBinary, startNatsServer, type NatsServerHandle } from '../cluster/index.ts';
import { isLoopbackHost } from '../config/index.ts';
import { HearthError } from '../errors/index.ts';
import { providerProblem } from '../runtime/provider-check.ts';
import { GATEWAY_USER, TrustAuthority, ensureClusterTls, type ClusterTls } from '../trust/index.ts';
import { WorkerNode, measureSpeed } from '../worker/index.ts';
import { startGateway, reachableHost, shellWord, type JoinInfo } from './gateway.ts';
import { SERVE_OPTIONS, parseArgs, prepareServe } from './serve-common.ts';
import { natsRunDir, persistedToken, stateDir } from './state-dir.ts';

export const usage = `hearth up [--model DIR|ORG/NAME] [--workers N] [--port P] [--host H] [--api-key KEY] [--quant int4]
          [--nats-host 127.0.0.1|0.0.0.0] [--nats-port P] [--provider cpu|cuda] [--threads N] [--config FILE]
Starts a private nats-server (auth on), the gateway (OpenAI API on --port, default 8080) and N local
workers, and prints the command other devices run to join. --model ORG/NAME that is not here yet is
pulled from the Hugging Face Hub first. Without --model it serves a small random demo checkpoint
generated offline. Without a nats-server binary it runs everything in this process. The generated
cluster token is kept in ${stateDir()}/cluster-token and the NATS port in ${stateDir()}/nats-port
(reused while free; --nats-port fixes it), so the join line stays valid across restarts and
workers that joined before rejoin by themselves.`;

const BIN = fileURLToPath(new URL('../../bin/hearth.js', import.meta.url));
/** What a person runs from a hearth checkout (the npm name `hearth` is someone else's package). */
const SELF = './hearth';

/** Things started so far, stopped in reverse order: on shutdown, and when start-up fails. */
class Started {
  private readonly stops: { what: string; stop: () => Promise<void> }[] = [];
  add(what: string, stop: () => Promise<void>): void {
    this.stops.push({ what, stop });
  }
  async stopAll(log: { warn(o: object, m?: string): void }): Promise<void> {
    for (const s of this.stops.reverse()) {
      await s.stop().catch((e: unknown) => log.warn({ err: (e as Error).message }, `stopping ${s.what} failed`));
    }
    this.stops.length = 0;
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...SERVE_OPTIONS, workers: { type: 'string' }, threads: { type: 'string' }, 'nats-host': { type: 'string' }, 'nats-port': { type: 'string' }, provider: { type: 'string' } },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const { cfg, log, modelDir, demo, notice } = await prepareServe(values, 'hearth-up');
  const nWorkers = cfg.cluster.workers;
  const provider = cfg.worker.provider;
  // Checked once here: every local worker would fail the same way.
  const problem = nWorkers > 0 ? await providerProblem(provider) : null;
  if (problem !== null) throw new HearthError('HEARTH_ERR_PROVIDER', [provider, problem]);
  const natsHost = cfg.cluster.natsHost;
  const natsPort = cfg.cluster.natsPort;

  let natsUrl = cfg.cluster.natsUrl;
  let binary: string | null = null;
  if (natsUrl === null) {
    binary = findNatsServerBinary();
    // Other devices can only ever join through a nats-server: never fall back silently then.
    if (binary === null && (!isLoopbackHost(natsHost) || natsPort !== 0)) {
      throw new HearthError('HEARTH_ERR_STARTUP', [
        `--nats-host ${natsHost}${natsPort !== 0 ? ` --nats-port ${natsPort}` : ''} is there to let other devices join, but there is no nats-server to listen for them ` +
          `(${noBinaryReason()}): install it (sudo apt-get install nats-server, or set HEARTH_NATS_SERVER=/path/to/nats-server), or leave out --nats-host/--nats-port to run everything in this one process`,
      ]);
    }
  }
  // In-process, nothing joins: a throwaway token (it still guards the weights route over HTTP).
  const token = cfg.cluster.token ?? (natsUrl === null && binary === null ? randomBytes(24).toString('hex') : persistedToken().token);

  // Listening from here on: a Ctrl-C while things start lets them finish starting, then stops
  // them all in order (Node's default would exit at once, leaving the nats-server behind).
  const signalled = firstSignal(log);
  const started = new Started();
  let stopping = false;
  try {
    let nats: NatsServerHandle | null = null;
    let bus: Bus;
    // With our own nats-server every node gets its own credential (issue 14): the gateway has a
    // user of its own, the token is only the join user's password.
    const gatewayPassword = randomBytes(24).toString('hex');
    // TLS by default when NATS listens beyond loopback: a CA of our own (kept in the state dir, so
    // the join line's pin stays valid), a server certificate for the address workers dial.
    const tls: ClusterTls | null = natsUrl === null && binary !== null && !isLoopbackHost(natsHost)
      ? ensureClusterTls(path.join(stateDir(), 'tls'), [reachableHost(natsHost), '127.0.0.1', 'localhost', os.hostname()])
      : null;
    let hub: MemoryHub | null = null;
    if (natsUrl === null && binary !== null) {
      // JetStream on: stored Responses (previous_response_id) live in its KV.
      const startNats = (port: number): Promise<NatsServerHandle> => startNatsServer({ token, users: TrustAuthority.initialUsers(cfg.cluster.name, gatewayPassword, token), ...(tls !== null ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile } } : {}), host: natsHost, port, binary: binary!, jetstream: true, dir: natsRunDir(), supervise: true, detached: true, log });
      const busy = (e: unknown): boolean => /address already in use/i.test((e as Error).message);
      // Without --nats-port, a restart comes back on the port of the last start (kept in the
      // state dir), so workers that joined before find the server at the URL they know and rejoin
      // by themselves (issue 20); only when another program holds it now is a free one taken.
      const remembered = natsPort === 0 ? rememberedNatsPort() : 0;
      try {
        nats = await startNats(remembered !== 0 ? remembered : natsPort);
      } catch (e) {
        if (remembered !== 0 && busy(e)) {
          nats = await startNats(0);
          log.warn({ was: remembered, now: nats.port }, `NATS port ${remembered} of the last start is taken: listening on ${nats.port}; workers that joined before must be restarted with the new join line (--nats-port fixes the port)`);
        } else if (natsPort !== 0 && busy(e)) {
          throw new HearthError('HEARTH_ERR_PORT_BUSY', [natsPort, ' (NATS)', '--nats-port N (or HEARTH_NATS_PORT; 0 picks a free one)']);
        } else {
          throw e;
        }
      }
      rememberNatsPort(nats.port);
      const n = nats;
      started.add('nats-server', () => n.stop());
      // The gateway's own bus credential, for `hearth doctor` run by this user on this machine (the
      // join token buys only a node credential; doctor needs the gateway's view). 0600, removed on stop.
      const credFile = path.join(stateDir(), 'gateway-credential');
      writeFileSync(credFile, JSON.stringify({ user: GATEWAY_USER, password: gatewayPassword, ...(tls !== null ? { caFile: tls.caFile } : {}) }) + '\n', { mode: 0o600 });
      started.add('gateway credential file', async () => { rmSync(credFile, { force: true }); });
      natsUrl = n.url;
    } else if (natsUrl === null) {
      process.stderr.write('hearth up: no nats-server binary found (apt install nats-server, or set HEARTH_NATS_SERVER);\n' +
        '           running the bus in this process instead: same contract, but no other device can join.\n');
    }
    if (natsUrl !== null) {
      const b = await NatsBus.connect({ servers: natsUrl, name: 'hearth-gateway', log, ...(nats !== null ? { user: GATEWAY_USER, pass: gatewayPassword } : { token }), ...(tls !== null ? { tls: { caFile: tls.caFile } } : {}) });
      started.add('bus', () => b.close());
      bus = b;
    } else {
      hub = new MemoryHub();
      bus = hub.bus(log);
    }

    const join = nats !== null ? joinInfo(token, natsHost, nats.port, cfg.cluster.name, tls?.caSha256 ?? null) : null;
    let trust: TrustAuthority | undefined;
    if (nats !== null) {
      const server = nats;
      trust = new TrustAuthority({ bus, cluster: cfg.cluster.name, server, gatewayPassword, joinPassword: token, log });
      trust.start();
      const tr = trust;
      started.add('trust authority', async () => tr.close());
    }
    const gateway = await startGateway({
      ...(trust !== undefined ? { trust } : {}),
      cfg, modelDir, bus, token, log, expectWorkers: nWorkers > 0,
      ...(notice !== undefined ? { notice } : {}),
      ...(join !== null ? { join: { command: join.command.replace(shellWord(token), '<token>'), note: join.note } } : {}),
    });
    const children: ChildProcess[] = [];
    const inProcess: (() => Promise<void>)[] = [];
    // The gateway drains first (running streams finish), and only then do the workers leave:
    // one entry, so the order holds on shutdown and after a failed start alike.
    started.add('gateway and local workers', async () => {
      await gateway.close();
      await stopChildren(children);
      for (const stop of inProcess) await stop();
    });

    // Local workers share this machine: cores, equal shares of memory and one speed figure
    // (probes run side by side are noisy and would skew the plan between identical workers).
    const threads = cfg.worker.threads ?? Math.max(1, Math.floor(os.availableParallelism() / Math.max(1, nWorkers)));
    const speed = nWorkers > 0 ? measureSpeed() : 0;
    const memShare = cfg.worker.memoryBytes ?? Math.floor((os.freemem() * 0.75) / Math.max(1, nWorkers));
    const cacheDir = cfg.worker.cacheDir ?? path.join(os.homedir(), '.cache', 'hearth', 'stages');
    const pretty = cfg.logging.pretty === 'auto' ? process.stdout.isTTY === true : cfg.logging.pretty;
    for (let i = 0; i < nWorkers; i++) {
      const name = `${os.hostname()}-${i + 1}`;
      if (hub !== null) {
        const wb = hub.bus(log);
        const node = new WorkerNode({ bus: wb, cluster: cfg.cluster.name, name, memory: memShare, threads, speed, modelDir, cacheDir, provider, log });
        node.start();
        inProcess.push(async () => { await node.close(); await wb.close(); });
        continue;
      }
      // The token travels in the environment, not argv: `ps` and /proc/PID/cmdline show a command
      // line to every user of the machine; /proc/PID/environ only to this user.
      const args = [BIN, 'worker', '--join', natsUrl!, '--name', name, '--cluster', cfg.cluster.name, '--model', modelDir, ...(tls !== null ? ['--tls-ca', tls.caFile] : []),
        '--threads', String(threads), '--memory', String(memShare), '--speed', String(speed), '--cache', cacheDir];
      const child = spawn(process.execPath, args, {
        stdio: ['ignore', 'inherit', 'inherit'],
        // Own process group: Ctrl-C in a terminal signals the whole foreground group, and the
        // workers must outlive the gateway's drain. We stop them after it; they also leave by
        // themselves when this process dies (HEARTH_PARENT_PID).
        detached: true,
        env: {
          ...process.env,
          HEARTH_TOKEN: token,
          HEARTH_PROVIDER: provider,
          HEARTH_LOG_LEVEL: cfg.logging.level,
          HEARTH_LOG_PRETTY: String(pretty),
          HEARTH_PARENT_PID: String(process.pid),
        },
      });
      child.on('exit', (code, sig) => { if (!stopping) log.warn({ worker: name, code, sig }, 'local worker exited'); });
      children.push(child);
    }

    process.stdout.write(banner(gateway.origin, path.basename(modelDir), nWorkers, hub !== null, demo, provider, join, cfg.cluster.token === null && nats !== null));

    const sig = await signalled;
    stopping = true;
    log.info({ sig }, 'shutting down: running streams finish, then the workers leave (Ctrl-C again stops at once)');
    await started.stopAll(log);
    return 0;
  } catch (e) {
    stopping = true;
    await started.stopAll(log);
    throw e;
  }
}

/**
 * Resolves on the first SIGINT/SIGTERM. A second one means "now": process.exit runs the exit
 * hooks (the nats-server is killed and its folder removed, src/cluster/nats-server.ts) and the
 * workers see us gone within a second. Under `npm start` one Ctrl-C arrives twice (the terminal
 * signals the whole group and npm forwards it again), so only a signal a second or more after the
 * first counts as the second. The listeners stay: a signal with none would kill us mid-drain.
 */
function firstSignal(log: { warn(o: object, m?: string): void }): Promise<string> {
  let at = 0;
  return new Promise((resolve) => {
    const on = (sig: string) => (): void => {
      if (at === 0) {
        at = Date.now();
        resolve(sig);
      } else if (Date.now() - at >= 1000) {
        log.warn({ sig }, 'stopping at once');
        process.exit(130);
      }
    };
    process.on('SIGINT', on('SIGINT'));
    process.on('SIGTERM', on('SIGTERM'));
  });
}

/** The state dir's record of the port the last `hearth up` listened on for NATS. */
const natsPortFile = (): string => path.join(stateDir(), 'nats-port');

function rememberedNatsPort(): number {
  try {
    const port = Number(readFileSync(natsPortFile(), 'utf8').trim());
    return Number.isInteger(port) && port > 0 && port < 65536 ? port : 0;
  } catch {
    return 0;
  }
}

function rememberNatsPort(port: number): void {
  try {
    writeFileSync(natsPortFile(), `${port}\n`, { mode: 0o600 });
  } catch { /* a read-only state dir: the next start picks a free port, as before */ }
}

function noBinaryReason(): string {
  const env = process.env['HEARTH_NATS_SERVER'];
  return env !== undefined && env !== '' ? `HEARTH_NATS_SERVER=${env} is not an executable file` : 'none on PATH, nor in /usr/sbin, /usr/local/bin or /usr/bin';
}

/** The line another device runs (from its hearth checkout), with the real address and port. */
function joinInfo(token: string, natsHost: string, port: number, cluster: string, caSha256: string | null): JoinInfo {
  const loopback = isLoopbackHost(natsHost);
  const host = loopback ? '127.0.0.1' : reachableHost(natsHost);
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  return {
    command: `HEARTH_TOKEN=${shellWord(token)} ${SELF} worker --join nats://${hostForUrl}:${port} --cluster ${shellWord(cluster)}${caSha256 !== null ? ` --ca-sha256 ${caSha256}` : ''}`,
    note: loopback ? 'NATS listens on this machine only (127.0.0.1): that line works here; to let other devices join, restart with --nats-host 0.0.0.0 (token auth stays on, TLS turns on) and, to keep the line valid across restarts, --nats-port 4222' : null,
  };
}

function banner(origin: string, model: string, nWorkers: number, inProcess: boolean, demo: boolean, provider: string, join: JoinInfo | null, tokenKept: boolean): string {
  const lines = [
    `hearth is up: OpenAI API at ${origin}/v1  (status page ${origin}/ , docs ${origin}/docs)`,
    `  model ${model}${demo ? ' (DEMO: random weights, its text is noise)' : ''} on ${nWorkers} local worker(s), provider ${provider}${inProcess ? ' (in-process bus)' : ''}`,
  ];
  if (join !== null) {
    lines.push(`  ${join.note === null ? 'another device joins with' : 'another worker joins with'} (run it in a hearth checkout):`, `    ${join.command}`);
    if (join.note !== null) lines.push(`  (${join.note})`);
    if (tokenKept) lines.push(`  (the token is kept in ${path.join(stateDir(), 'cluster-token')}; delete that file for a new one)`);
  }
  return lines.join('\n') + '\n';
}

async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => {
    const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 5000);
    c.once('exit', () => { clearTimeout(t); r(); });
  }))));
}

