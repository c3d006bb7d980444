// `hearth bench --cluster --figures` (issue 22 item 3): are the gateway's figures believable?
// For 1, 2 and 3 worker processes over a private nats-server (the 'balanced' plan, so every
// worker holds a share), one stream decodes alone to warm the plan up; the gateway's prediction
// for the plan (figures.ts: its own measured stage + hop times) is read; then another stream
// decodes alone and this harness times its tokens itself, as a client would (tokens after the
// first ÷ the time they took). Two warm-up streams first (a fresh plan's first runs pay
// onnxruntime's first-run costs). Prints predicted ÷ measured per worker count (goal 0.75–1.25),
// beside the planner's probe-based figure ÷ measured (what the page showed before).
//
// Sits above cluster and scheduler, like the CLI that calls it.

import { randomBytes } from 'node:crypto';
import { NatsBus } from '../bus/index.ts';
import { openCheckpoint } from '../model/index.ts';
import type { Quant } from '../runtime/types.ts';
import { GREEDY } from '../sampling/types.ts';
import { createScheduler } from '../scheduler/index.ts';
import type { Generator } from '../scheduler/types.ts';
import { spawnWorker, stopWorkers } from './bench-cluster.ts';
import { createClusterPipeline, type ClusterPipeline } from './cluster-pipeline.ts';
import { modelCostsFromCheckpoint } from './model-costs.ts';
import { startNatsServer } from './nats-server.ts';

export interface BenchFiguresOptions {
  readonly modelDir: string;
  readonly quant?: Quant;
  /** Intra-op threads per worker (default 1). */
  readonly threads?: number;
  /** Worker counts to run (default [1, 2, 3]). */
  readonly workers?: readonly number[];
  /** Decode tokens per stream (default 96). */
  readonly decodeTokens?: number;
  readonly onProgress?: (line: string) => void;
}

export interface BenchFiguresRow {
  readonly workers: number;
  readonly stages: readonly string[];
  /** The gateway's prediction before the measured stream, and its basis. */
  readonly predictedTokS: number;
  readonly predictedBasis: string;
  /** The planner's own (probe / heartbeat) figure for the same plan. */
  readonly plannerTokS: number | null;
  /** Timed here, as a client: tokens after the first ÷ their time. */
  readonly measuredTokS: number;
  /** What the gateway itself measured over its window after that stream. */
  readonly gatewayMeasuredTokS: number | null;
  readonly ratio: number;
  readonly plannerRatio: number | null;
}

async function until(pred: () => boolean, timeoutMs: number, what: string, logs: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s; worker logs:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One stream alone; returns client-side tok/s over the tokens after the first. */
async function stream(g: Generator, id: string, decode: number, vocab: number, salt: number): Promise<number> {
  const prompt = Int32Array.from({ length: 16 }, (_, i) => (i * 31 + salt * 7 + 1) % vocab);
  let first = 0;
  let last = 0;
  let n = 0;
  for await (const ev of g.generate({ id, prompt, maxTokens: decode, sampling: GREEDY, stopTokens: [] })) {
    if (ev.type !== 'token') continue;
    const now = performance.now();
    if (n === 0) first = now;
    last = now;
    n++;
  }
  return n > 1 && last > first ? (1000 * (n - 1)) / (last - first) : 0;
}

export async function benchFigures(opts: BenchFiguresOptions): Promise<BenchFiguresRow[]> {
  const threads = opts.threads ?? 1;
  const decode = opts.decodeTokens ?? 96;
  const quant = opts.quant ?? 'int4';
  const say = opts.onProgress ?? (() => undefined);
  const ckpt = openCheckpoint(opts.modelDir);
  const cfg = ckpt.config;
  const cost = modelCostsFromCheckpoint(ckpt, { quant, kvTokens: 2048 });
  ckpt.close();
  const vocab = Math.min(cfg.vocabSize, 1000);
  const rows: BenchFiguresRow[] = [];
  for (const count of opts.workers ?? [1, 2, 3]) {
    const token = randomBytes(16).toString('hex');
    const nats = await startNatsServer({ token });
    const workers: ReturnType<typeof spawnWorker>[] = [];
    const logs = (): string => workers.map((w) => w.log()).join('\n');
    let bus: NatsBus | null = null;
    let pipeline: ClusterPipeline | null = null;
    try {
      bus = await NatsBus.connect({ servers: nats.url, token, name: 'hearth-bench-gateway' });
      const p = createClusterPipeline({
        bus, cost, quant, cluster: 'bench', settleMs: 1500, objective: 'balanced',
        model: { name: 'bench', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
      });
      pipeline = p;
      for (let i = 0; i < count; i++) workers.push(spawnWorker(nats.url, token, 'bench', `w${i + 1}`, { modelDir: opts.modelDir, threads }));
      await until(() => { const pl = p.coordinator.plan(); return pl !== null && pl.live && pl.stages.length === count; }, 300_000, `${count} stage(s) live`, logs);
      const sched = createScheduler(p, { prefixCache: 0 });
      say(`${count} worker(s): warming up…`);
      // Two streams: the first runs of a fresh plan pay onnxruntime's first-run costs.
      await stream(sched, `warm${count}a`, decode, vocab, 1);
      await stream(sched, `warm${count}b`, decode, vocab, 3);
      const before = p.clusterSnapshot().forecast;
      const measured = await stream(sched, `run${count}`, decode, vocab, 2);
      const after = p.clusterSnapshot().forecast;
      const predicted = before?.predictedTokS ?? 0;
      const planner = before?.plannerTokS ?? null;
      const r2 = (x: number): number => Math.round(x * 100) / 100;
      rows.push({
        workers: count,
        stages: (p.coordinator.plan()?.stages ?? []).map((s) => `[${s.start},${s.end})`),
        predictedTokS: predicted, predictedBasis: before?.predictedBasis ?? '-', plannerTokS: planner,
        measuredTokS: r2(measured), gatewayMeasuredTokS: after?.measuredTokS ?? null,
        ratio: measured > 0 ? r2(predicted / measured) : 0,
        plannerRatio: planner !== null && measured > 0 ? r2(planner / measured) : null,
      });
      say(`${count} worker(s): predicted ${predicted} (${before?.predictedBasis}), measured ${r2(measured)} tok/s`);
    } finally {
      await pipeline?.close();
      await bus?.close();
      await stopWorkers(workers);
      await nats.stop();
    }
  }
  return rows;
}

export function formatBenchFigures(rows: readonly BenchFiguresRow[]): string {
  const f = (x: number | null): string => (x === null ? '–' : x.toFixed(1));
  const lines = ['figures (one run): predicted single-stream tok/s ÷ measured by this client (goal 0.75–1.25)'];
  for (const r of rows) {
    const ok = r.ratio >= 0.75 && r.ratio <= 1.25 ? '✓' : '✗';
    lines.push(`  ${r.workers} worker(s) ${r.stages.join(' ')}: predicted ${f(r.predictedTokS)} (${r.predictedBasis}), measured ${f(r.measuredTokS)} ` +
      `→ ${r.ratio.toFixed(2)} ${ok}; the gateway's window says ${f(r.gatewayMeasuredTokS)}; the planner alone said ${f(r.plannerTokS)} (${r.plannerRatio === null ? '–' : r.plannerRatio.toFixed(2)})`);
  }
  return lines.join('\n');
}
