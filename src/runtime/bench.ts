// benchEngine: one process, a chain of shard engines over a checkpoint, one greedy stream, at one
// or more context lengths. Per context: the prompt is prefilled in chunks of the size serving uses
// (limits.prefillChunk), then greedy decode; prefill and decode throughput, time to first token,
// resident memory against the weights + KV in use, and (with profile) where prefill and decode
// time goes per onnxruntime op.

import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../model/index.ts';
import { benchPromptIds } from './bench-prompt.ts';
import { createShardEngine, type OnnxShardEngine } from './engine.ts';
import type { Quant, StageItem, StageResult } from './types.ts';

export interface BenchOptions {
  readonly dir: string;
  readonly quant: Quant;
  /** Number of stages (even split of the layers), chained in this process. */
  readonly stages: number;
  /** Prompt lengths to measure, in this order, on one loaded model. */
  readonly contexts: readonly number[];
  readonly decodeTokens: number;
  /** Prompt tokens per engine step while prefilling (serving's limits.prefillChunk). */
  readonly prefillChunk: number;
  /** intra-op threads per stage (stages run one after another for a single stream). */
  readonly threads: number;
  /** Collect onnxruntime's per-op profile, split per context into prefill and decode. */
  readonly profile?: boolean;
  /** MatMulNBits accuracy_level for int4 (default 4). */
  readonly accuracyLevel?: number;
  /** Called once the stages are loaded, with the load time. */
  readonly onLoad?: (loadMs: number) => void;
  /** Called as each context finishes (before the next starts; with profile, all at the end). */
  readonly onContext?: (r: ContextResult) => void;
}

export interface OpTime {
  readonly op: string;
  readonly ms: number;
  readonly pct: number;
}

export interface ContextResult {
  /** Prompt tokens (the context the decode runs after). */
  readonly context: number;
  readonly decodeTokens: number;
  readonly prefillChunk: number;
  readonly prefillTokS: number;
  readonly decodeTokS: number;
  /** Prompt in → first token out: every prefill chunk plus picking the token. */
  readonly ttftMs: number;
  /**
   * Process CPU time (all threads) per decode token. On a shared machine wall time includes
   * waiting for a core; this is the work itself, so runs on a busy host stay comparable.
   */
  readonly decodeCpuMsPerToken: number;
  /** Process CPU time (all threads) per prompt token while prefilling (same reason). */
  readonly prefillCpuMsPerToken: number;
  /** Highest resident set sampled while this context ran (every 20 ms, and at its end). */
  readonly rssPeakBytes: number;
  /** Resident set after the last decode step, KV still held. */
  readonly rssBytes: number;
  readonly weightBytes: number;
  /** KV cache bytes held after the last decode step (context + decoded positions). */
  readonly kvBytes: number;
  readonly rssPeakOverWeightsKv: number;
  readonly rssOverWeightsKv: number;
  /** The greedy tokens: the one prefill picked, then each decode step's (compare with llama.cpp). */
  readonly greedyIds: readonly number[];
  /** Per-op time over this context's prefill steps and decode steps, summed over stages (profile only). */
  readonly perOp?: { readonly prefill: OpTime[]; readonly decode: OpTime[] };
}

export interface BenchResult {
  /** Build + session creation, all stages (they load in parallel). */
  readonly loadMs: number;
  readonly weightBytes: number;
  /** The process's peak resident set over the whole run, load included (getrusage maxrss). */
  readonly processPeakRssBytes: number;
  readonly contexts: ContextResult[];
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

/** Loads the stages; resolves to the engines and the load time. Close them when done. */
export async function loadBenchEngines(opts: Pick<BenchOptions, 'dir' | 'quant' | 'stages' | 'threads' | 'profile' | 'accuracyLevel'>): Promise<{ engines: OnnxShardEngine[]; loadMs: number }> {
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
  return { engines, loadMs: performance.now() - t0 };
}

/** Samples the process's resident set while a context runs (the engine works in its own thread). */
function rssSampler(): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  return {
    stop(): number {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss());
    },
  };
}

export async function benchEngine(opts: BenchOptions): Promise<BenchResult> {
  const { engines, loadMs } = await loadBenchEngines(opts);
  opts.onLoad?.(loadMs);
  const cfg = (engines[0] as OnnxShardEngine).config;
  for (const c of opts.contexts) {
    if (!(c >= 1) || c + opts.decodeTokens > cfg.maxPositions) {
      await Promise.all(engines.map((e) => e.close()));
      throw new RangeError(`context ${c} + ${opts.decodeTokens} decode tokens must fit the model's ${cfg.maxPositions} positions`);
    }
  }
  const chunk = Math.max(1, opts.prefillChunk);
  try {
    // A short warm-up sequence first so first-run allocations are not timed.
    const warm = benchPromptIds(9, cfg.vocabSize);
    await chainRun(engines, { seq: 'warmup', pos: 0, n: 8, tokens: warm.subarray(0, 8) });
    await chainRun(engines, { seq: 'warmup', pos: 8, n: 1, tokens: warm.subarray(8, 9) });
    for (const e of engines) e.free('warmup');
    // Session runs per engine so far; the profile windows below count from here.
    let runs = 2;
    const windows: [number, number][] = [];

    const weightBytes = engines.reduce((s, e) => s + e.weightBytes(), 0);
    const results: ContextResult[] = [];
    for (const context of opts.contexts) {
      const seq = `bench-${context}`;
      const prompt = benchPromptIds(context, cfg.vocabSize);
      const rss = rssSampler();
      const pc0 = process.cpuUsage();
      const p0 = performance.now();
      let r: StageResult | undefined;
      for (let pos = 0; pos < context; pos += chunk) {
        const n = Math.min(chunk, context - pos);
        r = await chainRun(engines, { seq, pos, n, tokens: prompt.subarray(pos, pos + n) });
      }
      let next = argmax(r?.logits as Float32Array);
      const ttftMs = performance.now() - p0;
      const pcpu = process.cpuUsage(pc0);
      const greedyIds = [next];
      const c0 = process.cpuUsage();
      const d0 = performance.now();
      for (let i = 0; i < opts.decodeTokens; i++) {
        r = await chainRun(engines, { seq, pos: context + i, n: 1, tokens: Int32Array.of(next) });
        next = argmax(r.logits as Float32Array);
        greedyIds.push(next);
      }
      const decodeMs = performance.now() - d0;
      const cpu = process.cpuUsage(c0);
      const kvBytes = engines.reduce((s, e) => s + e.kvBytes(), 0);
      const rssBytes = process.memoryUsage.rss();
      const rssPeakBytes = rss.stop();
      for (const e of engines) e.free(seq);
      const prefillRuns = Math.ceil(context / chunk);
      windows.push([runs, runs + prefillRuns], [runs + prefillRuns, runs + prefillRuns + opts.decodeTokens]);
      runs += prefillRuns + opts.decodeTokens;
      const res: ContextResult = {
        context,
        decodeTokens: opts.decodeTokens,
        prefillChunk: chunk,
        prefillTokS: context / (ttftMs / 1000),
        decodeTokS: opts.decodeTokens / (decodeMs / 1000),
        ttftMs,
        decodeCpuMsPerToken: (cpu.user + cpu.system) / 1000 / Math.max(1, opts.decodeTokens),
        prefillCpuMsPerToken: (pcpu.user + pcpu.system) / 1000 / context,
        rssPeakBytes,
        rssBytes,
        weightBytes,
        kvBytes,
        rssPeakOverWeightsKv: rssPeakBytes / (weightBytes + kvBytes),
        rssOverWeightsKv: rssBytes / (weightBytes + kvBytes),
        greedyIds,
      };
      results.push(res);
      // Without a profile each row is final now; with one, rows wait for the trace below.
      if (!opts.profile) opts.onContext?.(res);
    }
    let contexts = results;
    if (opts.profile) {
      const files = (await Promise.all(engines.map((e) => e.endProfiling()))).filter((f): f is string => f !== null);
      try {
        const ops = profileOpTimes(files, windows, runs);
        contexts = results.map((r, i) => ({ ...r, perOp: { prefill: ops[2 * i] ?? [], decode: ops[2 * i + 1] ?? [] } }));
      } catch (e) {
        // The timings stand without the profile; say why it is missing.
        process.emitWarning((e as Error).message);
      }
      for (const r of contexts) opts.onContext?.(r);
    }
    return { loadMs, weightBytes, processPeakRssBytes: process.resourceUsage().maxRSS * 1024, contexts };
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
 * Sums onnxruntime profile node times by op type within each window [from, to) of session runs
 * (each session.run is a "model_run" event, counted from 0 per trace file); time in a run outside
 * any node is "(session)". Traces are summed across files (one per stage). `expectRuns`, when
 * given, is checked against each trace so a change in how many runs a step takes is noticed
 * rather than silently misattributed.
 */
export function profileOpTimes(files: readonly string[], windows: readonly (readonly [number, number])[], expectRuns?: number): OpTime[][] {
  const byOp = windows.map(() => new Map<string, number>());
  for (const f of files) {
    const events = JSON.parse(fs.readFileSync(f, 'utf8')) as TraceEvent[];
    fs.rmSync(f, { force: true });
    // The engine's per-session profile folder (os.tmpdir()/hearth-prof-*) goes with its trace.
    if (path.basename(path.dirname(f)).startsWith('hearth-prof-')) fs.rmSync(path.dirname(f), { recursive: true, force: true });
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
    if (expectRuns !== undefined && runs.length !== expectRuns) {
      throw new Error(`profile: ${path.basename(f)} has ${runs.length} session runs, the bench made ${expectRuns} steps (one run per step assumed)`);
    }
    const starts = runs.map((e) => e.ts ?? 0);
    // Index of the run an event at time ts belongs to: the last run starting at or before ts.
    const runOf = (ts: number): number => {
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((starts[mid] as number) <= ts) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    const windowOf = (run: number): number => windows.findIndex(([a, b]) => run >= a && run < b);
    const nodeUs = windows.map(() => 0);
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
      const w = windowOf(runOf(e.ts ?? 0));
      if (w < 0) continue;
      const op = e.args?.op_name ?? 'unknown';
      const m = byOp[w] as Map<string, number>;
      m.set(op, (m.get(op) ?? 0) + (e.dur ?? 0));
      nodeUs[w] = (nodeUs[w] as number) + (e.dur ?? 0);
    }
    windows.forEach(([a, b], w) => {
      const runUs = runs.slice(a, b).reduce((s, e) => s + (e.dur ?? 0), 0);
      const m = byOp[w] as Map<string, number>;
      m.set('(session)', (m.get('(session)') ?? 0) + Math.max(0, runUs - (nodeUs[w] as number)));
    });
  }
  return byOp.map((m) => {
    const total = [...m.values()].reduce((s, v) => s + v, 0) || 1;
    return [...m.entries()].map(([op, us]) => ({ op, ms: us / 1000, pct: (100 * us) / total })).sort((a, b) => b.ms - a.ms);
  });
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)}`;

/** A plain-text table, one row per context (what `hearth bench` prints without --json). */
export function formatBench(r: BenchResult, loadColdMs?: number): string {
  const head = ['context', 'prefill tok/s', 'decode tok/s', 'TTFT ms', 'decode CPU ms/tok', 'RSS peak MiB', 'RSS now MiB', 'weights MiB', 'KV MiB', 'peak ÷ (w+KV)', 'now ÷ (w+KV)'];
  const rows = r.contexts.map((c) => [
    String(c.context),
    c.prefillTokS.toFixed(1),
    c.decodeTokS.toFixed(1),
    c.ttftMs.toFixed(0),
    c.decodeCpuMsPerToken.toFixed(1),
    mib(c.rssPeakBytes),
    mib(c.rssBytes),
    mib(c.weightBytes),
    mib(c.kvBytes),
    c.rssPeakOverWeightsKv.toFixed(2),
    c.rssOverWeightsKv.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  let out = [line(head), ...rows.map(line)].join('\n');
  out += `\n\nload: ${loadColdMs === undefined ? '' : `first ${loadColdMs.toFixed(0)} ms (fresh process), `}this process ${r.loadMs.toFixed(0)} ms; process peak RSS ${mib(r.processPeakRssBytes)} MiB (load included)`;
  for (const c of r.contexts) {
    if (!c.perOp) continue;
    const col = (ops: OpTime[]): string[] => ops.slice(0, 10).map((o) => `${o.op.padEnd(34)} ${o.ms.toFixed(1).padStart(9)} ms ${o.pct.toFixed(1).padStart(5)} %`);
    out += `\n\ncontext ${c.context}: prefill time by op\n${col(c.perOp.prefill).join('\n')}\ncontext ${c.context}: decode time by op\n${col(c.perOp.decode).join('\n')}`;
  }
  return out;
}
