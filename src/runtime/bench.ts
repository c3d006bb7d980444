// benchEngine: one process, a chain of shard engines over a checkpoint, one greedy stream.
// Measures prefill and decode throughput, time to first token, peak RSS against the weight bytes
// held, and (with profile) where decode time goes per onnxruntime op.

import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../model/index.ts';
import { createShardEngine, type OnnxShardEngine } from './engine.ts';
import type { Quant, StageItem, StageResult } from './types.ts';

export interface BenchOptions {
  readonly dir: string;
  readonly quant: Quant;
  /** Number of stages (even split of the layers), chained in this process. */
  readonly stages: number;
  readonly promptTokens: number;
  readonly decodeTokens: number;
  /** intra-op threads per stage (stages run one after another for a single stream). */
  readonly threads: number;
  /** Collect onnxruntime's per-op profile over the decode steps. */
  readonly profile?: boolean;
  /** MatMulNBits accuracy_level for int4 (default 4). */
  readonly accuracyLevel?: number;
}

export interface OpTime {
  readonly op: string;
  readonly ms: number;
  readonly pct: number;
}

export interface BenchResult {
  readonly prefillTokS: number;
  readonly decodeTokS: number;
  readonly ttftMs: number;
  /** Build + session creation, all stages (they load in parallel). */
  readonly loadMs: number;
  readonly peakRssBytes: number;
  readonly weightBytes: number;
  readonly rssOverWeights: number;
  /**
   * Process CPU time (all threads) per decode token. On a shared machine wall time includes
   * waiting for a core; this is the work itself, so runs on a busy host stay comparable.
   */
  readonly decodeCpuMsPerToken: number;
  /** Decode time per op type, summed over stages, largest first (profile only). */
  readonly perOp?: OpTime[];
}

function evenRanges(layers: number, stages: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < stages; i++) out.push([Math.floor((i * layers) / stages), Math.floor(((i + 1) * layers) / stages)]);
  return out;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

async function chainRun(engines: readonly OnnxShardEngine[], item: StageItem): Promise<StageResult> {
  let cur = item;
  let res: StageResult | undefined;
  for (const e of engines) {
    [res] = await e.run([cur]);
    cur = { ...item, hidden: res?.hidden as Float32Array };
  }
  return res as StageResult;
}

export async function benchEngine(opts: BenchOptions): Promise<BenchResult> {
  const ckpt = openCheckpoint(opts.dir);
  const cfg = ckpt.config;
  ckpt.close();
  const stages = Math.max(1, Math.min(opts.stages, cfg.numLayers));
  const t0 = performance.now();
  const engines = await Promise.all(
    evenRanges(cfg.numLayers, stages).map(([start, end]) =>
      createShardEngine(
        opts.dir,
        { start, end, quant: opts.quant, threads: opts.threads, provider: 'cpu' },
        { profile: opts.profile === true, ...(opts.accuracyLevel !== undefined ? { accuracyLevel: opts.accuracyLevel } : {}) },
      ),
    ),
  );
  const loadMs = performance.now() - t0;
  try {
    // Deterministic prompt; a short warm-up sequence first so first-run allocations are not timed.
    let x = 12345;
    const prompt = Int32Array.from({ length: opts.promptTokens }, () => (x = (x * 1103515245 + 12345) % 2147483648) % cfg.vocabSize);
    await chainRun(engines, { seq: 'warmup', pos: 0, n: 8, tokens: prompt.subarray(0, 8) });
    await chainRun(engines, { seq: 'warmup', pos: 8, n: 1, tokens: prompt.subarray(8, 9) });
    for (const e of engines) e.free('warmup');

    const p0 = performance.now();
    let r = await chainRun(engines, { seq: 'bench', pos: 0, n: prompt.length, tokens: prompt });
    let next = argmax(r.logits as Float32Array);
    const ttftMs = performance.now() - p0;
    const c0 = process.cpuUsage();
    const d0 = performance.now();
    for (let i = 0; i < opts.decodeTokens; i++) {
      r = await chainRun(engines, { seq: 'bench', pos: prompt.length + i, n: 1, tokens: Int32Array.of(next) });
      next = argmax(r.logits as Float32Array);
    }
    const decodeMs = performance.now() - d0;
    const cpu = process.cpuUsage(c0);
    const weightBytes = engines.reduce((s, e) => s + e.weightBytes(), 0);
    const peakRssBytes = process.resourceUsage().maxRSS * 1024;
    let perOp: OpTime[] | undefined;
    if (opts.profile) {
      const files = await Promise.all(engines.map((e) => e.endProfiling()));
      // Runs per engine: warm-up prefill, warm-up step, prompt; everything after is decode.
      perOp = decodeOpTimes(files.filter((f): f is string => f !== null), 3);
    }
    return {
      prefillTokS: prompt.length / (ttftMs / 1000),
      decodeTokS: opts.decodeTokens / (decodeMs / 1000),
      ttftMs,
      loadMs,
      peakRssBytes,
      weightBytes,
      rssOverWeights: peakRssBytes / weightBytes,
      decodeCpuMsPerToken: (cpu.user + cpu.system) / 1000 / Math.max(1, opts.decodeTokens),
      ...(perOp ? { perOp } : {}),
    };
  } finally {
    await Promise.all(engines.map((e) => e.close()));
  }
}

interface TraceEvent {
  readonly cat?: string;
  readonly name?: string;
  readonly ts?: number;
  readonly dur?: number;
  readonly args?: { readonly op_name?: string };
}

/**
 * Sums onnxruntime profile node times by op type over the runs after the first `skipRuns`
 * (each session.run is a "model_run" event); time in a run outside any node is "(session)".
 */
export function decodeOpTimes(files: readonly string[], skipRuns: number): OpTime[] {
  const byOp = new Map<string, number>();
  for (const f of files) {
    const events = JSON.parse(fs.readFileSync(f, 'utf8')) as TraceEvent[];
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
    const from = runs[skipRuns]?.ts;
    if (from === undefined) continue;
    let nodeUs = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || (e.ts ?? 0) < from || !e.name?.endsWith('_kernel_time')) continue;
      const op = e.args?.op_name ?? 'unknown';
      byOp.set(op, (byOp.get(op) ?? 0) + (e.dur ?? 0));
      nodeUs += e.dur ?? 0;
    }
    const runUs = runs.slice(skipRuns).reduce((s, e) => s + (e.dur ?? 0), 0);
    byOp.set('(session)', (byOp.get('(session)') ?? 0) + Math.max(0, runUs - nodeUs));
    fs.rmSync(f, { force: true });
    // The engine's per-session profile folder (os.tmpdir()/hearth-prof-*) goes with its trace.
    if (path.basename(path.dirname(f)).startsWith('hearth-prof-')) fs.rmSync(path.dirname(f), { recursive: true, force: true });
  }
  const total = [...byOp.values()].reduce((s, v) => s + v, 0) || 1;
  return [...byOp.entries()]
    .map(([op, us]) => ({ op, ms: us / 1000, pct: (100 * us) / total }))
    .sort((a, b) => b.ms - a.ms);
}

/** A plain-text table of a result (what `hearth bench` prints without --json). */
export function formatBench(r: BenchResult): string {
  const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const rows: [string, string][] = [
    ['prefill', `${r.prefillTokS.toFixed(1)} tok/s`],
    ['decode', `${r.decodeTokS.toFixed(1)} tok/s`],
    ['decode CPU time', `${r.decodeCpuMsPerToken.toFixed(1)} ms/token (all threads)`],
    ['time to first token', `${r.ttftMs.toFixed(0)} ms`],
    ['load (build + session)', `${r.loadMs.toFixed(0)} ms`],
    ['peak RSS', mb(r.peakRssBytes)],
    ['weights held', mb(r.weightBytes)],
    ['peak RSS / weights', r.rssOverWeights.toFixed(2)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  let out = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
  if (r.perOp) out += '\n\ndecode time by op\n' + r.perOp.slice(0, 12).map((o) => `${o.op.padEnd(34)} ${o.ms.toFixed(1).padStart(9)} ms ${o.pct.toFixed(1).padStart(5)} %`).join('\n');
  return out;
}
