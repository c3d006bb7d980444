// A whole cluster for end-to-end tests that look inside the gateway: a real nats-server (free
// port, token auth), real `hearth worker` processes, and the real gateway (startGateway: the API,
// scheduler, coordinator and /metrics that `hearth up` and `hearth gateway` run) in this process,
// with config from the real loader. Tests reach it with the openai SDK and plain fetch, and may
// kill a worker.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { NatsBus } from '../../src/bus/index.ts';
import { startGateway, type Gateway } from '../../src/cli/gateway.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { spawnWorker, until, withNats, type WorkerProc } from './nats.ts';

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface TestCluster {
  readonly gateway: Gateway;
  /** http://127.0.0.1:PORT/v1 */
  readonly baseURL: string;
  readonly origin: string;
  readonly workers: WorkerProc[];
  /** The gateway's log lines so far (pino JSON). */
  log(): string;
  /** One sample of /metrics: the value of `name{labels}` (0 when the series is absent). */
  metric(name: string, labels?: string): Promise<number>;
  /** Waits until `nodes` workers are in (ready or idle spares) and a plan is live. */
  waitNodes(nodes: number, timeoutMs?: number): Promise<void>;
  /** The worker that runs stage `i` of the live plan (by its --name). */
  stageWorker(i: number): WorkerProc;
}

export async function startCluster(t: Tap, modelDir: string, opts: { workers: number; limits?: Record<string, number | null>; logLevel?: string; flags?: Record<string, unknown>; jetstream?: boolean } = { workers: 2 }): Promise<TestCluster> {
  // A token as `hearth up` makes one (the config wants at least 16 characters). JetStream: stored
  // responses live in its KV, as under `hearth up`.
  const nats = await withNats(t, { token: randomBytes(16).toString('hex'), ...(opts.jetstream === true ? { jetstream: true } : {}) });
  const bus = await NatsBus.connect({ servers: nats.url, token: nats.token, name: 'test-gateway' });
  const flags: Record<string, unknown> = { host: '127.0.0.1', port: 0, cluster: 'test', 'server.ui': false, 'server.drainMs': 1000, 'cluster.plan': 'balanced' };
  for (const [k, v] of Object.entries(opts.limits ?? {})) flags[`limits.${k}`] = v;
  Object.assign(flags, opts.flags);
  const cfg = loadConfig({ env: {}, flags });
  let lines = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines += chunk.toString();
      if (lines.length > 2_000_000) lines = lines.slice(-1_000_000);
      cb();
    },
  });
  const log = createLogger({ level: (opts.logLevel ?? 'warn') as 'warn', pretty: false, logPrompts: false }, { destination: sink, name: 'gateway' });
  const gateway = await startGateway({ cfg, modelDir, bus, token: nats.token, log });
  t.teardown(async () => {
    await gateway.close();
    await bus.close();
  });
  const workers: WorkerProc[] = [];
  for (let i = 0; i < opts.workers; i++) {
    // The token travels in the environment, never on a command line.
    workers.push(spawnWorker(t, ['--join', nats.url, '--cluster', 'test', '--name', `w${i + 1}`, '--model', modelDir, '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: nats.token }));
  }
  const waitNodes = async (nodes: number, timeoutMs = 120_000): Promise<void> => {
    try {
      await until(() => {
        const p = gateway.pipeline.coordinator.plan();
        const up = gateway.pipeline.clusterSnapshot().nodes.filter((n) => n.state === 'ready' || n.state === 'idle').length;
        return p !== null && p.live && up === nodes;
      }, timeoutMs, `a live plan and ${nodes} worker(s) in`);
    } catch (e) {
      const why = `${(e as Error).message}\nplan: ${JSON.stringify(gateway.pipeline.coordinator.plan())}\ngateway log:\n${lines.slice(-3000)}\n${workers.map((w, i) => `worker ${i + 1}:\n${w.stderr().slice(-1500)}`).join('\n')}`;
      throw new Error(why);
    }
  };
  await waitNodes(opts.workers);
  const origin = gateway.origin;
  return {
    gateway,
    origin,
    baseURL: `${origin}/v1`,
    workers,
    log: () => lines,
    async metric(name, labels = '') {
      const text = await (await fetch(`${origin}/metrics`)).text();
      const series = `${name}${labels === '' ? '' : `{${labels}}`}`;
      for (const line of text.split('\n')) {
        if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
      }
      return 0;
    },
    waitNodes,
    stageWorker(i) {
      const node = gateway.pipeline.coordinator.plan()?.stages[i]?.node ?? '';
      const w = workers[Number(/^w(\d+)-/.exec(node)?.[1] ?? 0) - 1];
      if (w === undefined) throw new Error(`no worker runs stage ${i} (${node})`);
      return w;
    },
  };
}

/** Polls `f` until it resolves true (every 100 ms), or throws after timeoutMs naming `what`. */
export async function eventually(f: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await f()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
