// `hearth worker`: join a cluster over NATS and serve the layer range the gateway assigns.

import { clusterToken } from './token-file.ts';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { parseFlags as parseArgs } from './flags.ts';
import { NatsBus } from '../bus/index.ts';
import { loadConfig } from '../config/index.ts';
import { HearthError, isHearthError } from '../errors/index.ts';
import { createLogger } from '../observability/index.ts';
import { providerProblem } from '../runtime/provider-check.ts';
import { probeDecodeSaved } from '../runtime/index.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { JoinRefusedError, connectNode, fetchPinnedCa } from '../trust/index.ts';
import { WorkerNode, makeNodeId, measureSpeed, roundQuarterOctave } from '../worker/index.ts';

export const usage = `HEARTH_TOKEN=T hearth worker --join nats://HOST:PORT [--cluster NAME] [--name N] [--memory BYTES]
              [--threads N] [--provider cpu|cuda] [--model DIR] [--cache DIR] [--speed GFLOPS]
              [--token-file FILE] [--hop-delay-ms MS] [--slowdown F] [--ca-sha256 HEX] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--nkey-seed SEED]
Joins a cluster and runs the range of the model's layers the gateway assigns to this device.
The cluster token comes from HEARTH_TOKEN or --token-file (--token T works too, but every user
of this machine can read a command line with ps). Without --model the worker fetches only its
own layers from the gateway (cached in --cache). The token only buys this node a credential of
its own (an nkey it makes itself). --ca-sha256 (from the join line of \`hearth up\` on the LAN) pins
the cluster's CA: TLS to NATS, verified against it.
--hop-delay-ms and --slowdown simulate a far link and an F-times slower device (benchmarks and
tests of the planner); the speed probe and link probes see them as the planner would.`;

function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (m === null) throw new Error(`--memory: cannot read "${s}" (bytes, or e.g. 4G, 512M)`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      join: { type: 'string', default: process.env['HEARTH_JOIN'] ?? '' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      provider: { type: 'string' },
      name: { type: 'string', default: os.hostname() },
      memory: { type: 'string' },
      threads: { type: 'string' },
      model: { type: 'string' },
      cache: { type: 'string', default: path.join(os.homedir(), '.cache', 'hearth', 'stages') },
      cluster: { type: 'string', default: process.env['HEARTH_CLUSTER'] ?? 'default' },
      speed: { type: 'string' },
      'hop-delay-ms': { type: 'string', default: process.env['HEARTH_HOP_DELAY_MS'] ?? '0' },
      slowdown: { type: 'string', default: process.env['HEARTH_SLOWDOWN'] ?? '1' },
      'tls-ca': { type: 'string' },
      'ca-sha256': { type: 'string', default: process.env['HEARTH_CA_SHA256'] ?? '' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'nkey-seed': { type: 'string', default: process.env['HEARTH_NKEY_SEED'] ?? '' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (values.join === '') {
    process.stderr.write(`hearth worker: --join nats://HOST:PORT is required\n${usage}\n`);
    return 2;
  }
  // The same logging settings (and so the same look in a terminal) as the gateway of `hearth up`.
  // Only the options a worker uses: a gateway's settings in the same environment (HEARTH_PORT, a
  // token of its own making…) are not the worker's to validate.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^HEARTH_(LOG_|LOGGING_|PROVIDER$|WORKER_PROVIDER$)/.test(k)));
  const cfg = loadConfig({ env, flags: { logLevel: values['log-level'], provider: values.provider } });
  const log = createLogger(cfg.logging, { name: 'hearth-worker', destination: pino.destination(2), isTTY: process.stderr.isTTY === true });
  let token = clusterToken(values['token-file']);
  if (values.token !== undefined) {
    token = values.token;
    log.warn('--token on the command line is readable by every user of this machine (ps); prefer HEARTH_TOKEN=T in the environment or --token-file FILE');
  }
  const provider = cfg.worker.provider;
  const problem = await providerProblem(provider);
  if (problem !== null) throw new HearthError('HEARTH_ERR_PROVIDER', [provider, problem]);
  const threads = values.threads !== undefined ? Number(values.threads) : Math.max(1, os.availableParallelism());
  // Default budget: most of what is free now, leaving room for the OS and other programs.
  const memory = values.memory !== undefined ? parseBytes(values.memory) : Math.floor(os.freemem() * 0.75);
  const slowdown = Number(values.slowdown);
  if (!Number.isFinite(slowdown) || slowdown < 1) throw new HearthError('HEARTH_ERR_USAGE', [`--slowdown: expected a number ≥ 1, got "${values.slowdown}"`]);
  // A simulated slow device probes as slow as it will run.
  const speed = values.speed !== undefined ? Number(values.speed) : roundQuarterOctave(measureSpeed() / slowdown);
  // The decode kernel's own time per MB on these threads: what the planner predicts a stage's step
  // from until the node has served (issue 20). Not with --speed (tests and benches that pin the
  // plan), nor on CUDA, whose step this CPU probe does not time.
  // A probe that fails leaves the planner its GFLOP/s figure: the node still joins.
  const decodeMsPerMb = values.speed === undefined && provider === 'cpu'
    // Rounded to a quarter-octave like the matmul probe: two runs on one machine differ by 10-20%,
    // and that noise must not reshape a plan between identical devices.
    ? await probeDecodeSaved(threads, values.cache).then((r) => roundQuarterOctave(r.msPerMb * slowdown), (e: unknown) => {
      log.warn({ err: (e as Error).message }, 'the decode probe failed; the planner goes by the matmul probe');
      return undefined;
    })
    : undefined;
  const hopDelayMs = Number(values['hop-delay-ms']);
  // A join line of `hearth up` on the LAN pins its CA (--ca-sha256): the CA certificate is taken
  // from the chain the server presents, kept only if its fingerprint is the pin, and used to
  // verify the server from then on (src/trust/tls.ts).
  let pinnedCa: string | undefined;
  if (values['ca-sha256'] !== '' && values['tls-ca'] === undefined) {
    try {
      const pem = await fetchPinnedCa(values.join, values['ca-sha256']);
      const dir = path.join(values.cache, '..', 'cluster-ca');
      mkdirSync(dir, { recursive: true });
      pinnedCa = path.join(dir, `${values['ca-sha256'].replace(/[^0-9a-f]/gi, '').slice(0, 32).toLowerCase()}.pem`);
      writeFileSync(pinnedCa, pem);
    } catch (e) {
      process.stderr.write(`hearth worker: ${(e as Error).message}\n`);
      return 3;
    }
  }
  const tlsCa = values['tls-ca'] ?? pinnedCa;
  const tls = tlsCa !== undefined || values['tls-cert'] !== undefined
    ? { ...(tlsCa !== undefined ? { caFile: tlsCa } : {}), ...(values['tls-cert'] !== undefined ? { certFile: values['tls-cert'] } : {}), ...(values['tls-key'] !== undefined ? { keyFile: values['tls-key'] } : {}) }
    : undefined;

  const id = makeNodeId(values.name);
  let bus: NatsBus;
  try {
    // The token only buys this node its own credential (issue 14); a server of the operator's
    // own with one shared token (no join user) is joined with the token as before. A server that
    // is not up yet is waited for, and a credential it refuses later is renewed with the token
    // (issue 20: workers outlive a restarted gateway).
    bus = await connectNode({
      servers: values.join, token, cluster: values.cluster, id, name: values.name, log, busName: `hearth-worker ${values.name}`,
      ...(values['nkey-seed'] !== '' ? { nkeySeed: values['nkey-seed'] } : {}),
      ...(tls !== undefined ? { tls } : {}),
    });
  } catch (e) {
    process.stderr.write(`hearth worker: ${isHearthError(e) ? e.message : (e as Error).message}\n`);
    return isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED') ? 3 : 1;
  }
  const perturb = Number(process.env['HEARTH_TEST_PERTURB_OUTPUT'] ?? '');
  const node = new WorkerNode({
    bus, id, cluster: values.cluster, name: values.name, memory, threads, speed,
    ...(decodeMsPerMb !== undefined ? { decodeMsPerMb } : {}),
    modelDir: values.model ?? null, cacheDir: values.cache, hopDelayMs, provider, log,
    ...(slowdown > 1 ? { slowdown } : {}),
    ...(Number.isFinite(perturb) && perturb > 0 ? { perturbOutput: perturb } : {}),
  });
  node.start();
  log.info({ id: node.id, join: values.join, cluster: values.cluster, memory, threads, speed, decodeMsPerMb, provider }, `worker joined the bus (provider ${provider}); waiting for an assignment`);

  let revoked = false;
  let leaving = false;
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => { leaving = true; log.info({ sig }, 'leaving the cluster'); resolve(); };
    // The bus renews a refused credential by itself (a restarted gateway, a node forgotten after
    // a long silence); it closes only when that cannot work: the gateway refused to admit this
    // node again (it distrusts it: its work failed a spot check), or the token itself is refused.
    void bus.closed().then((e) => {
      if (leaving) return;
      revoked = true;
      if (e instanceof JoinRefusedError) log.error({ reason: e.reason }, `the gateway refused to admit this node again (${e.reason}); exiting`);
      else log.error({ err: e?.message }, 'the NATS server closed this node\'s connection (credential revoked or refused); exiting');
      resolve();
    });
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // A local worker of `hearth up` leaves with it, even when `up` was killed without a chance to
    // stop us (SIGKILL, a crashed terminal): otherwise it would reconnect to a dead bus forever.
    const parent = Number(process.env['HEARTH_PARENT_PID'] ?? '0');
    if (parent > 0) {
      setInterval(() => {
        try { process.kill(parent, 0); } catch { stop('parent exited'); }
      }, 1000).unref();
    }
  });
  await node.close();
  await bus.close();
  return revoked ? 3 : 0;
}
