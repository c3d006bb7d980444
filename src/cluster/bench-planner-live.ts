// `hearth bench --planner-live`: does the planner's move pay off in speed? A worker made F× slower
// (--slowdown, which its speed probe sees too) serves alone; a normal worker joins and the planner
// ('fastest') moves the model to it. Measured here, in one run: the predicted and the measured
// single-stream tok/s of the plan before and after, and their ratios. test/cluster-planner-live.test.ts
// checks the same scenario structurally (who serves, who is left out and why); speeds belong here,
// since a test that asserts on them fails whenever the machine is busy (issue 19 item 10).
//
// Sits above cluster and scheduler, like the CLI that calls it.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { NatsBus } from '../bus/index.ts';
import { openCheckpoint } from '../model/index.ts';
import { GREEDY } from '../sampling/types.ts';
import { createScheduler } from '../scheduler/index.ts';
import type { Generator } from '../scheduler/types.ts';
import { stopWorkers } from './bench-cluster.ts';
import { createClusterPipeline, type ClusterPipeline } from './cluster-pipeline.ts';
import { modelCostsFromCheckpoint } from './model-costs.ts';
import { startNatsServer } from './nats-server.ts';

export interface BenchPlannerLiveOptions {
  readonly modelDir: string;
  /** How much slower the first worker is (default 8). */
  readonly slowdown?: number;
  /** Intra-op threads per worker (default 1). */
  readonly threads?: number;
  /** Sequences served on each plan before reading its measured speed (default 3). */
  readonly sequences?: number;
  /** Decode tokens per sequence (default 16). */
  readonly decodeTokens?: number;
  readonly onProgress?: (line: string) => void;
}

/** One plan's speed: what the planner predicted and what serving measured (single stream). */
export interface PlannerPlanSpeed {
  readonly node: string;
  readonly predictedTokS: number;
  readonly measuredTokS: number | null;
}

export interface BenchPlannerLiveResult {
  readonly slowdown: number;
  readonly before: PlannerPlanSpeed;
  readonly after: PlannerPlanSpeed;
  /** after ÷ before: above 1 when the move paid off. */
  readonly predictedRatio: number;
  readonly measuredRatio: number | null;
  /** The slow worker's idle reason as /v1/cluster gives it. */
  readonly leftOut: string | null;
}

const BIN = fileURLToPath(new URL('../../bin/hearth.js', import.meta.url));

function worker(url: string, token: string, name: string, o: { modelDir: string; threads: number; slowdown: number }): { proc: ChildProcess; log: () => string } {
  // No --speed: each worker runs its speed probe (the slow one's is divided by its slowdown).
  const proc = spawn(process.execPath, [BIN, 'worker', '--join', url, '--cluster', 'bench', '--name', name, '--model', o.modelDir,
    '--threads', String(o.threads), '--memory', '1G', ...(o.slowdown > 1 ? ['--slowdown', String(o.slowdown)] : [])], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HEARTH_LOG_LEVEL: 'warn', HEARTH_TOKEN: token },
  });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
  return { proc, log: () => log };
}

async function until(pred: () => boolean, timeoutMs: number, what: string, logs: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s; worker logs:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function serve(g: Generator, tag: string, n: number, decode: number, vocab: number): Promise<void> {
  for (let k = 0; k < n; k++) {
    const prompt = Int32Array.from({ length: 6 }, (_, i) => (i * 31 + k * 7 + 1) % vocab);
    for await (const ev of g.generate({ id: `${tag}${k}`, prompt, maxTokens: decode, sampling: GREEDY, stopTokens: [] })) void ev;
  }
}

export async function benchPlannerLive(opts: BenchPlannerLiveOptions): Promise<BenchPlannerLiveResult> {
  const slowdown = opts.slowdown ?? 8;
  const threads = opts.threads ?? 1;
  const n = opts.sequences ?? 3;
  const decode = opts.decodeTokens ?? 16;
  const say = opts.onProgress ?? (() => undefined);
  const ckpt = openCheckpoint(opts.modelDir);
  const cfg = ckpt.config;
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 2048 });
  ckpt.close();
  const vocab = Math.min(cfg.vocabSize, 1000);
  const token = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token });
  const workers: { proc: ChildProcess; log: () => string }[] = [];
  const logs = (): string => workers.map((w) => w.log()).join('\n');
  let bus: NatsBus | null = null;
  let pipeline: ClusterPipeline | null = null;
  try {
    bus = await NatsBus.connect({ servers: nats.url, token, name: 'hearth-bench-gateway' });
    const p = createClusterPipeline({
      bus, cost, cluster: 'bench', settleMs: 300, objective: 'fastest',
      model: { name: 'bench', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
    });
    pipeline = p;
    const sched = createScheduler(p, { prefixCache: 0 });
    const servedBy = (name: string) => (): boolean => {
      const plan = p.coordinator.plan();
      return plan !== null && plan.live && plan.stages.length === 1 && plan.stages[0]!.node.startsWith(name);
    };
    const speed = async (tag: string): Promise<PlannerPlanSpeed> => {
      await serve(sched, tag, n, decode, vocab);
      // The heartbeat after serving carries the measured step time.
      await until(() => p.clusterSnapshot().forecast?.measuredTokS != null, 10_000, 'a measured tok/s', logs).catch(() => undefined);
      const f = p.clusterSnapshot().forecast;
      return { node: p.coordinator.plan()?.stages[0]?.node ?? '?', predictedTokS: f?.predictedTokS ?? 0, measuredTokS: f?.measuredTokS ?? null };
    };

    say(`a worker ${slowdown}× slower serves alone…`);
    workers.push(worker(nats.url, token, 'slow', { modelDir: opts.modelDir, threads, slowdown }));
    await until(servedBy('slow'), 300_000, 'the slow worker serving alone', logs);
    const before = await speed('a');
    say(`slow alone: predicted ${before.predictedTokS} tok/s, measured ${before.measuredTokS ?? '–'}; a normal worker joins…`);
    workers.push(worker(nats.url, token, 'fast', { modelDir: opts.modelDir, threads, slowdown: 1 }));
    await until(servedBy('fast'), 300_000, 'the normal worker serving alone', logs);
    const leftOut = p.clusterSnapshot().nodes.find((x) => x.name === 'slow')?.idleReason ?? null;
    const after = await speed('b');
    const ratio = (x: number | null, y: number | null): number | null => (x === null || y === null || y === 0 ? null : Math.round((x / y) * 100) / 100);
    return { slowdown, before, after, predictedRatio: ratio(after.predictedTokS, before.predictedTokS) ?? 0, measuredRatio: ratio(after.measuredTokS, before.measuredTokS), leftOut };
  } finally {
    await pipeline?.close();
    await bus?.close();
    await stopWorkers(workers);
    await nats.stop();
  }
}

export function formatBenchPlannerLive(r: BenchPlannerLiveResult): string {
  const m = (x: number | null): string => (x === null ? '–' : x.toFixed(1));
  return [
    `planner, live (one run): a ${r.slowdown}× slower worker alone, then a normal one joins`,
    `  before (${r.before.node}): predicted ${m(r.before.predictedTokS)} tok/s, measured ${m(r.before.measuredTokS)}`,
    `  after  (${r.after.node}): predicted ${m(r.after.predictedTokS)} tok/s, measured ${m(r.after.measuredTokS)}`,
    `  after ÷ before: predicted ${r.predictedRatio.toFixed(2)}×, measured ${r.measuredRatio === null ? '–' : `${r.measuredRatio.toFixed(2)}×`}`,
    `  ${r.leftOut ?? 'the slow worker was not left out'}`,
  ].join('\n');
}
