import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../config/index.ts';
import { parseFlags as parseArgs } from './flags.ts';
import { QUANTS, type Quant } from '../runtime/types.ts';
import { CACHE_DIR_ENV } from '../runtime/shard-cache.ts';
import { HearthError } from '../errors/index.ts';

export const usage = `hearth bench --model DIR [--quant none|int4] [--contexts 128,2048,8192] [--decode-tokens N]
             [--prefill-chunk N] [--threads N] [--stages K] [--json] [--profile] [--single-load]
hearth bench --cluster --model DIR [--quant int4] [--streams 8,16] [--hop-delays 0,2] [--spot-check 0.03,1] [--rounds 3] [--json]
hearth bench --cluster --joins --model DIR [--quant int4] [--context 1024] [--prompt-tokens 2048] [--decode-tokens N] [--only join|prefill] [--json]
hearth bench --cluster --figures --model DIR [--quant int4] [--workers 1,2,3] [--decode-tokens N] [--json]
hearth bench --cluster --speculate --model DIR [--quant int4] [--hop-delays 2] [--decode-tokens N] [--json]
hearth bench --planner-live --model DIR [--slowdown 8] [--json]
One process, per context (prompt length): prefill tok/s (the prompt fed in serving's prefill chunks,
limits.prefillChunk), decode tok/s after it, time to first token, RSS (peak and now) against
weights + KV in use; --profile adds per-op time for each context's prefill and decode. --json prints
one JSON object per context, one per line. Load time twice: first in a fresh child process (cold),
then this process's own load (a cache hit once a shard cache exists); --single-load skips the first.
--cluster: 2 worker processes over a real nats-server vs the same model in one process; 8 and 16
(--streams, a list) concurrent streams vs 1; hop latency p50/p99; with and without added per-hop
delay (the delayed single stream ÷ the 0 ms one). Ratios come from one run (the best of --rounds).
Then each worker's peak RSS (VmHWM) against its weights + KV in use as the planner counts them, the
gateway's own, and stage balance (median ms per step on each stage).
--cluster --joins: a worker joins a stream of --context tokens served by one worker (equal, then one that
moves layers off a --slowdown 3 worker): largest gap ÷ median (goal ≤ 3), text identical to an undisturbed
run; TTFT of a --prompt-tokens prompt on 2 workers ÷ 1 (goal ≤ 0.6); four such prompts sent together on 2
workers, last first token ÷ first (goal ≤ 1.5). Each worker 1 thread.
--cluster --figures: for 1, 2, 3 (--workers) worker processes, the gateway's predicted single-stream tok/s
(from the plan's own measured stage + hop times, after a warm-up stream) ÷ what this client measures on
the next stream alone (goal 0.75–1.25), beside the planner's probe figure ÷ the same.
--cluster --speculate: speculative decoding off vs on over 2 workers (first --hop-delays value, default
2 ms per hop): tokens per pass and tok/s for a json_schema answer with fixed keys, a story whose text is
in the prompt, and a plain prompt; says whether both gave the same tokens.
--planner-live: a worker --slowdown times slower serves alone, a normal one joins; the planner's
predicted and the measured single-stream tok/s before and after the move, and their ratios.
--spot-check RATES: also measure, beside the unchecked cluster, 1 and N streams with the gateway
  spot-checking that fraction of sequences (its own copy of the stages recomputes them).`;

const BIN = fileURLToPath(new URL('../../bin/hearth.js', import.meta.url));

/** One load of the same stages in a fresh process: its load time in ms. */
function childLoadMs(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'bench', ...args, '--load-only', '--json'], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new HearthError('HEARTH_ERR_ENGINE', [`cold load in a child process failed: ${stderr.trim() || err.message}`], { cause: err }));
      try {
        resolve((JSON.parse(stdout) as { loadMs: number }).loadMs);
      } catch (e) {
        reject(new HearthError('HEARTH_ERR_ENGINE', [`cold load in a child process printed no result: ${stdout.slice(0, 200)}`], { cause: e }));
      }
    });
  });
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      json: { type: 'boolean', default: false },
      threads: { type: 'string' },
      stages: { type: 'string', default: '1' },
      contexts: { type: 'string' },
      'prompt-tokens': { type: 'string', default: '128' },
      'decode-tokens': { type: 'string', default: '64' },
      'prefill-chunk': { type: 'string' },
      profile: { type: 'boolean', default: false },
      'single-load': { type: 'boolean', default: false },
      'load-only': { type: 'boolean', default: false },
      cluster: { type: 'boolean', default: false },
      'spot-check': { type: 'string' },
      streams: { type: 'string', default: '8,16' },
      'hop-delays': { type: 'string' },
      rounds: { type: 'string' },
      speculate: { type: 'boolean', default: false },
      figures: { type: 'boolean', default: false },
      joins: { type: 'boolean', default: false },
      only: { type: 'string' },
      context: { type: 'string', default: '1024' },
      workers: { type: 'string', default: '1,2,3' },
      'planner-live': { type: 'boolean', default: false },
      slowdown: { type: 'string', default: '8' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (values.model === undefined) {
    process.stderr.write(`hearth bench: --model DIR is required (e.g. make one: hearth make-model /tmp/q05 --preset qwen2.5-0.5b)\n${usage}\n`);
    return 2;
  }
  const quant = values.quant as Quant;
  if (!QUANTS.includes(quant)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--quant must be one of ${QUANTS.join(', ')}`]);
  const int = (name: string, v: string, min = 0): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--${name} must be a whole number${min > 0 ? ` ≥ ${min}` : ''}; got "${v}"`]);
    return n;
  };
  const progress = (line: string): void => {
    if (!values.json) process.stderr.write(line + '\n');
  };
  const threads = values.threads === undefined ? os.availableParallelism() : int('threads', values.threads, 1);

  if (values['planner-live']) {
    const { benchPlannerLive, formatBenchPlannerLive } = await import('../cluster/bench-planner-live.ts');
    const r = await benchPlannerLive({ modelDir: values.model, slowdown: int('slowdown', values.slowdown, 1), ...(values.threads === undefined ? {} : { threads }), onProgress: progress });
    process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBenchPlannerLive(r) + '\n');
    return 0;
  }
  if (values.cluster && values.joins) {
    const { benchJoins, formatBenchJoins } = await import('../cluster/bench-joins.ts');
    const r = await benchJoins({
      modelDir: values.model, quant,
      context: int('context', values.context, 1),
      prefillTokens: values['prompt-tokens'] === '128' ? 2048 : int('prompt-tokens', values['prompt-tokens'], 1),
      decodeTokens: int('decode-tokens', values['decode-tokens'], 17),
      ...(values.only === 'join' || values.only === 'prefill' ? { only: values.only } : {}),
      onProgress: progress,
    });
    process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBenchJoins(r) + '\n');
    return 0;
  }
  if (values.cluster && values.figures) {
    const { benchFigures, formatBenchFigures } = await import('../cluster/bench-figures.ts');
    const r = await benchFigures({
      modelDir: values.model, quant, threads: values.threads === undefined ? 1 : threads,
      workers: values.workers.split(',').map((v) => int('workers', v.trim(), 1)),
      decodeTokens: values['decode-tokens'] === '64' ? 96 : int('decode-tokens', values['decode-tokens'], 2),
      onProgress: progress,
    });
    process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBenchFigures(r) + '\n');
    return 0;
  }
  if (values.cluster && values.speculate) {
    const { benchSpeculate, formatBenchSpeculate } = await import('../cluster/bench-speculate.ts');
    const r = await benchSpeculate({
      modelDir: values.model,
      quant,
      ...(values.threads === undefined ? {} : { threads }),
      hopDelayMs: int('hop-delays', (values['hop-delays'] ?? '2').split(',')[0]!.trim()),
      decodeTokens: values['decode-tokens'] === '64' ? 96 : int('decode-tokens', values['decode-tokens'], 2),
      onProgress: progress,
    });
    process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBenchSpeculate(r) + '\n');
    return 0;
  }
  if (values.cluster) {
    const { benchCluster, formatBenchCluster } = await import('../cluster/bench-cluster.ts');
    const r = await benchCluster({
      modelDir: values.model,
      quant,
      ...(values.threads === undefined ? {} : { threads }),
      promptTokens: int('prompt-tokens', values['prompt-tokens']),
      decodeTokens: int('decode-tokens', values['decode-tokens']),
      streams: values.streams.split(',').map((v) => int('streams', v.trim(), 1)),
      hopDelaysMs: (values['hop-delays'] ?? '0,2').split(',').map((s) => int('hop-delays', s.trim())),
      ...(values.rounds === undefined ? {} : { rounds: int('rounds', values.rounds, 1) }),
      onProgress: progress,
      ...(values['spot-check'] !== undefined ? { spotCheckRates: values['spot-check'].split(',').map((s) => spotRate(s.trim())) } : {}),
    });
    process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBenchCluster(r) + '\n');
    return 0;
  }

  const { benchEngine, formatBench, loadBenchEngines } = await import('../runtime/bench.ts');
  const stages = int('stages', values.stages, 1);
  if (values['load-only']) {
    const { engines, loadMs } = await loadBenchEngines({ dir: values.model, quant, stages, threads });
    await Promise.all(engines.map((e) => e.close()));
    process.stdout.write(JSON.stringify({ loadMs }) + '\n');
    return 0;
  }
  const contexts = (values.contexts ?? values['prompt-tokens']).split(',').map((s) => int('contexts', s.trim(), 1));
  // The first load runs in its own process so this one's resident set holds one load only. It
  // builds into a fresh shard cache folder (the cold figure) and this process then loads from it
  // (the cached figure); the user's own cache is neither read nor filled. The child and the engine
  // threads inherit the variable.
  let loadColdMs: number | undefined;
  let benchCache: string | null = null;
  if (!values['single-load']) {
    benchCache = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-bench-shards-'));
    process.env[CACHE_DIR_ENV] = benchCache;
    process.on('exit', () => fs.rmSync(benchCache as string, { recursive: true, force: true }));
    progress('load 1 (fresh process, empty shard cache)…');
    loadColdMs = await childLoadMs(['--model', values.model, '--quant', quant, '--threads', String(threads), '--stages', String(stages)]);
  }
  progress(`load 2 (this process), then contexts ${contexts.join(', ')}…`);
  // Every JSON row carries the run's settings and load times, so each line stands on its own.
  let base: Record<string, unknown> = { quant, threads, stages, ...(loadColdMs === undefined ? {} : { loadColdMs }) };
  const r = await benchEngine({
    dir: values.model,
    quant,
    stages,
    contexts,
    decodeTokens: int('decode-tokens', values['decode-tokens'], 1),
    prefillChunk: int('prefill-chunk', values['prefill-chunk'] ?? String(defaultConfig().limits.prefillChunk), 1),
    threads,
    profile: values.profile,
    onLoad: (loadMs) => (base = { ...base, loadMs }),
    onContext: (c) => {
      if (values.json) process.stdout.write(JSON.stringify({ ...base, ...c }) + '\n');
      else progress(`context ${c.context}: prefill ${c.prefillTokS.toFixed(1)} tok/s, decode ${c.decodeTokS.toFixed(1)} tok/s`);
    },
  });
  if (!values.json) process.stdout.write(formatBench(r, loadColdMs) + '\n');
  return 0;
}

/** --spot-check RATE[,RATE…]: fractions of sequences in [0, 1]. */
function spotRate(s: string): number {
  const n = Number(s);
  if (s === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--spot-check takes rates between 0 and 1 (e.g. 0.03,1); got "${s}"`]);
  return n;
}
