// `hearth up`: everything on this machine in one command — a private nats-server on loopback
// (auth on), the gateway, and N local worker processes — and the line another device runs to join.

import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MemoryHub, NatsBus, type Bus } from '../bus/index.ts';
import { findNatsServerBinary, startNatsServer, type NatsServerHandle } from '../cluster/index.ts';
import { WorkerNode, measureSpeed } from '../worker/index.ts';
import { startGateway, reachableHost } from './gateway.ts';
import { SERVE_OPTIONS, parseArgs, prepareServe, untilSignal } from './serve-common.ts';

export const usage = `hearth up [--model DIR|ORG/NAME] [--workers N] [--port P] [--host H] [--api-key KEY] [--quant int4]
          [--nats-host 127.0.0.1|0.0.0.0] [--threads N] [--config FILE]
Starts a private nats-server (auth on), the gateway (OpenAI API on --port, default 8080) and N local
workers, and prints the command other devices run to join. Without --model it serves a small random
demo checkpoint generated offline. Without a nats-server binary it runs everything in this process.`;

const BIN = fileURLToPath(new URL('../../bin/hearth.js', import.meta.url));

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...SERVE_OPTIONS, workers: { type: 'string' }, threads: { type: 'string' }, 'nats-host': { type: 'string', default: '127.0.0.1' } },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const { cfg, log, modelDir } = await prepareServe(values, 'hearth-up');
  const token = cfg.cluster.token ?? randomBytes(24).toString('hex');
  const nWorkers = cfg.cluster.workers;
  // Local workers share this machine's cores.
  const threads = cfg.worker.threads ?? Math.max(1, Math.floor(os.availableParallelism() / Math.max(1, nWorkers)));

  let nats: NatsServerHandle | null = null;
  let natsUrl = cfg.cluster.natsUrl;
  let bus: Bus;
  let hub: MemoryHub | null = null;
  if (natsUrl === null) {
    const binary = findNatsServerBinary();
    if (binary !== null) {
      // JetStream on: stored Responses (previous_response_id) live in its KV.
      nats = await startNatsServer({ token, host: values['nats-host'], binary, jetstream: true });
      natsUrl = nats.url;
    } else {
      process.stderr.write('hearth up: no nats-server binary found (apt install nats-server, or set HEARTH_NATS_SERVER);\n' +
        '           running the bus in this process instead: same contract, but no other device can join.\n');
    }
  }
  if (natsUrl !== null) {
    bus = await NatsBus.connect({ servers: natsUrl, token, name: 'hearth-gateway', log });
  } else {
    hub = new MemoryHub();
    bus = hub.bus(log);
  }

  const gateway = await startGateway({ cfg, modelDir, bus, token, log });

  // Local workers share this machine: give them equal shares of memory and one speed figure
  // (probes run side by side are noisy and would skew the plan between identical workers).
  const speed = measureSpeed();
  const memShare = cfg.worker.memoryBytes ?? Math.floor((os.freemem() * 0.75) / Math.max(1, nWorkers));
  let stopping = false;
  const children: ChildProcess[] = [];
  const inProcess: WorkerNode[] = [];
  const workerBuses: Bus[] = [];
  for (let i = 0; i < nWorkers; i++) {
    const name = `${os.hostname()}-${i + 1}`;
    if (hub !== null) {
      const wb = hub.bus(log);
      workerBuses.push(wb);
      const node = new WorkerNode({ bus: wb, cluster: cfg.cluster.name, name, memory: memShare, threads, speed, modelDir, cacheDir: cfg.worker.cacheDir ?? path.join(os.homedir(), '.cache', 'hearth', 'stages'), log });
      node.start();
      inProcess.push(node);
      continue;
    }
    // `--token=T`: a token may start with '-' (user-chosen), which parseArgs would take for a flag.
    const args = [BIN, 'worker', '--join', natsUrl!, `--token=${token}`, '--name', name, '--cluster', cfg.cluster.name, '--model', modelDir, '--threads', String(threads)];
    args.push('--memory', String(memShare), '--speed', String(speed));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, HEARTH_LOG_LEVEL: cfg.logging.level, HEARTH_PARENT_PID: String(process.pid) } });
    child.on('exit', (code, sig) => { if (!stopping) log.warn({ worker: name, code, sig }, 'local worker exited'); });
    children.push(child);
  }

  const joinHost = values['nats-host'] === '127.0.0.1' ? '<this machine\'s LAN address>' : reachableHost(values['nats-host']);
  const natsPort = nats?.port;
  process.stdout.write(
    `hearth is up: OpenAI API at ${gateway.origin}/v1  (status page ${gateway.origin}/ , docs ${gateway.origin}/docs)\n` +
      `  model ${path.basename(modelDir)} on ${nWorkers} local worker(s)${hub !== null ? ' (in-process bus)' : ''}\n` +
      (natsPort !== undefined
        ? `  another device joins with:\n    npx hearth worker --join nats://${joinHost}:${natsPort} --token ${token} --cluster ${cfg.cluster.name}\n` +
          (values['nats-host'] === '127.0.0.1' ? `  (NATS listens on loopback only; restart with --nats-host 0.0.0.0 to let other devices in — auth stays on)\n` : '')
        : ''),
  );

  const sig = await untilSignal();
  stopping = true;
  log.info({ sig }, 'shutting down: draining streams, workers leave the plan');
  await gateway.close();
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => {
    const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 5000);
    c.once('exit', () => { clearTimeout(t); r(); });
  }))));
  for (const n of inProcess) await n.close();
  for (const b of workerBuses) await b.close();
  await bus.close();
  await nats?.stop();
  return 0;
}
