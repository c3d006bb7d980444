// `hearth bench --cluster --joins` (issue 22 items 1 and 2), measured in one run on one machine:
//
//  join: one worker serves a stream with a long context (--context, default 1,024 tokens); an
//    undisturbed run first gives the text; then the same stream again while a second worker joins
//    at its 16th token: the largest gap between two tokens ÷ the median gap (goal ≤ 3), and whether
//    the text is the undisturbed run's. Then the same with a join that moves layers: the serving
//    worker is --slowdown 3 (its probe sees it too) and a normal one joins.
//  prefill: TTFT of one --prefill-tokens (2,048) prompt on 2 workers × 1 thread ÷ on 1 worker × 1
//    thread (goal ≤ 0.6); four distinct prompts of that length sent together on 2 workers: the
//    last first token ÷ the first one's (goal ≤ 1.5).
//
// Sits above cluster and scheduler, like the CLI that calls it.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { NatsBus } from '../bus/index.ts';
import { openCheckpoint } from '../model/index.ts';
import type { Quant } from '../runtime/types.ts';
import { GREEDY } from '../sampling/types.ts';
import { createScheduler } from '../scheduler/index.ts';
import type { Generator } from '../scheduler/types.ts';
import { stopWorkers } from './bench-cluster.ts';
import { createClusterPipeline, type ClusterPipeline } from './cluster-pipeline.ts';
import { modelCostsFromCheckpoint } from './model-costs.ts';
import type { PlanObjective } from './plan-choice.ts';
import { startNatsServer } from './nats-server.ts';

const BIN = fileURLToPath(new URL('../../bin/hearth.js', import.meta.url));

export interface BenchJoinsOptions {
  readonly modelDir: string;
  readonly quant?: Quant;
  /** Context of the stream a worker joins under (default 1024). */
  readonly context?: number;
  /** Prompt tokens of the prefill runs (default 2048). */
  readonly prefillTokens?: number;
  /** Decode tokens of the join runs (default 64). */
  readonly decodeTokens?: number;
  /** Only the join runs, or only the prefill runs (default both). */
  readonly only?: 'join' | 'prefill';
  readonly onProgress?: (line: string) => void;
}

export interface JoinRun {
  readonly label: string;
  readonly maxGapMs: number;
  readonly medianGapMs: number;
  readonly ratio: number;
  readonly sameText: boolean;
  /** Epochs the stream saw change under it. */
  readonly epochChanges: number;
  /** When the largest gap ended, in ms after the newcomer was started (negative: before it). */
  readonly maxGapAfterJoinMs: number;
  /** How the stream went on when the plan changed under it: replayed its context from position 0,
   *  or moved to the plan it had warmed (scheduler/warm-move.ts), feeding only the tokens since. */
  readonly replays: number;
  readonly moves: readonly { readonly from: number; readonly tokens: number }[];
  /** A move: the gap that ended with the stream's first token on the new plan, and the median
   *  gaps on the old plan (before it) and on the new one (after); null without a move. */
  readonly switch: { readonly gapMs: number; readonly medianBeforeMs: number; readonly medianAfterMs: number } | null;
}

export interface BenchJoinsResult {
  readonly joins: readonly JoinRun[];
  /** null when --only join. */
  readonly ttft1Ms: number | null;
  readonly ttft2Ms: number | null;
  readonly ttftRatio: number | null;
  readonly fourFirstMs: number | null;
  readonly fourLastMs: number | null;
  readonly fourRatio: number | null;
}

interface Cluster {
  readonly pipeline: ClusterPipeline;
  /** Token ids the prompts use: below this. */
  readonly vocab: number;
  readonly sched: Generator;
  /** The join stream's replays and moves (seq ids starting with `<label>-join.`). */
  readonly replays: string[];
  readonly moves: { seq: string; from: number; tokens: number; at: number }[];
  worker(name: string, extra?: string[]): void;
  close(): Promise<void>;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function cluster(modelDir: string, quant: Quant, objective: PlanObjective): Promise<Cluster> {
  const ckpt = openCheckpoint(modelDir);
  const cfg = ckpt.config;
  const cost = modelCostsFromCheckpoint(ckpt, { quant, kvTokens: 4096 });
  ckpt.close();
  const token = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token });
  const bus = await NatsBus.connect({ servers: nats.url, token, name: 'hearth-bench-gateway' });
  const pipeline = createClusterPipeline({
    bus, cost, quant, cluster: 'bench', settleMs: 400, objective,
    model: { name: 'bench', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '', contextLength: 4096 },
  });
  const procs: { proc: ChildProcess }[] = [];
  const replays: string[] = [];
  const moves: { seq: string; from: number; tokens: number; at: number }[] = [];
  return {
    pipeline,
    vocab: Math.min(cfg.vocabSize, 1000),
    replays,
    moves,
    sched: createScheduler(pipeline, {
      prefixCache: 0, contextLength: 4096,
      onReplay: (seq) => replays.push(seq),
      onMove: (seq, _epoch, from, tokens) => moves.push({ seq, from, tokens, at: performance.now() }),
    }),
    worker(name, extra = []) {
      const proc = spawn(process.execPath, [BIN, 'worker', '--join', nats.url, '--cluster', 'bench', '--name', name, '--model', modelDir, '--threads', '1', '--memory', '4G', ...extra], {
        stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, HEARTH_LOG_LEVEL: 'warn', HEARTH_TOKEN: token },
      });
      procs.push({ proc });
    },
    async close() {
      await pipeline.close();
      await bus.close();
      await stopWorkers(procs);
      await nats.stop();
    },
  };
}

const promptOf = (n: number, salt: number, vocab: number): Int32Array => Int32Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104_729 + 13) % vocab);

/** One stream: tokens, the gap before each, and the time to its first token. */
async function stream(g: Generator, id: string, prompt: Int32Array, n: number, onToken?: (i: number) => void): Promise<{ tokens: number[]; gaps: number[]; ends: number[]; ttftMs: number }> {
  const t0 = performance.now();
  let last = 0;
  const tokens: number[] = [];
  const gaps: number[] = [];
  const ends: number[] = [];
  let ttftMs = 0;
  for await (const ev of g.generate({ id, prompt, maxTokens: n, sampling: GREEDY, stopTokens: [] })) {
    if (ev.type !== 'token') continue;
    const now = performance.now();
    if (tokens.length === 0) ttftMs = now - t0; else { gaps.push(now - last); ends.push(now); }
    last = now;
    tokens.push(ev.token.token);
    onToken?.(tokens.length);
  }
  return { tokens, gaps, ends, ttftMs };
}

function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.floor(a.length / 2)] ?? 0;
}

async function joinRun(o: BenchJoinsOptions, label: string, first: string[], second: string[], say: (l: string) => void): Promise<JoinRun> {
  const c = await cluster(o.modelDir, o.quant ?? 'int4', 'fastest');
  try {
    const vocab = c.vocab;
    c.worker('w1', first);
    await until(() => c.pipeline.coordinator.plan()?.live === true, 600_000, 'w1 serving');
    const prompt = promptOf(o.context ?? 1024, 1, vocab);
    const n = o.decodeTokens ?? 64;
    // Twice undisturbed: the second gives the text and warms the plan's measured figures.
    await stream(c.sched, `${label}-warm`, prompt, n);
    const want = await stream(c.sched, `${label}-ref`, prompt, n);
    say(`${label}: undisturbed run done; the same stream again, a worker joins at its 16th token`);
    const epoch = c.pipeline.epoch();
    let joined = false;
    let joinAt = 0;
    const got = await stream(c.sched, `${label}-join`, prompt, n, (i) => {
      if (i === 16 && !joined) { joined = true; joinAt = performance.now(); c.worker('w2', second); }
    });
    // The join may settle after the stream ended (a short stream, a slow start): say so.
    const changes = c.pipeline.epoch() - epoch;
    const med = median(got.gaps);
    const max = Math.max(...got.gaps);
    const at = (got.ends[got.gaps.indexOf(max)] ?? joinAt) - joinAt;
    const mine = (seq: string): boolean => seq.startsWith(`${label}-join.`);
    const moved = c.moves.find((m) => mine(m.seq));
    const k = moved === undefined ? -1 : got.ends.findIndex((e) => e > moved.at);
    const r1 = (x: number): number => Math.round(x * 10) / 10;
    const sw = moved === undefined || k < 0 ? null : { gapMs: Math.round(got.gaps[k]!), medianBeforeMs: r1(median(got.gaps.slice(0, k))), medianAfterMs: r1(median(got.gaps.slice(k + 1))) };
    return {
      switch: sw,
      label, maxGapMs: Math.round(max), medianGapMs: Math.round(med * 10) / 10, ratio: Math.round((max / med) * 100) / 100, sameText: JSON.stringify(got.tokens) === JSON.stringify(want.tokens), epochChanges: changes, maxGapAfterJoinMs: Math.round(at),
      replays: c.replays.filter(mine).length, moves: c.moves.filter((m) => mine(m.seq)).map(({ from, tokens }) => ({ from, tokens })),
    };
  } finally {
    await c.close();
  }
}

async function ttft(o: BenchJoinsOptions, workers: number, four: boolean, say: (l: string) => void): Promise<{ one: number; four: number[] }> {
  const c = await cluster(o.modelDir, o.quant ?? 'int4', 'balanced');
  try {
    for (let i = 0; i < workers; i++) c.worker(`w${i + 1}`, ['--speed', '10']);
    await until(() => { const p = c.pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === workers; }, 600_000, `${workers} stage(s) live`);
    const len = o.prefillTokens ?? 2048;
    await stream(c.sched, 'warm', promptOf(256, 9, c.vocab), 2);
    const one = (await stream(c.sched, 'one', promptOf(len, 2, c.vocab), 2)).ttftMs;
    say(`${workers} worker(s): TTFT of ${len} tokens ${Math.round(one)} ms`);
    if (four) say(`${workers} worker(s): four prompts of ${len} tokens together…`);
    const times = four ? (await Promise.all([3, 4, 5, 6].map((k) => stream(c.sched, `four${k}`, promptOf(len, k, c.vocab), 2)))).map((r) => r.ttftMs) : [];
    return { one, four: times };
  } finally {
    await c.close();
  }
}

export async function benchJoins(o: BenchJoinsOptions): Promise<BenchJoinsResult> {
  const say = o.onProgress ?? (() => undefined);
  const joins: JoinRun[] = [];
  if (o.only !== 'prefill') {
    for (const [label, a, b] of [['an equal worker joins', ['--speed', '10'], ['--speed', '10']], ['a join that moves layers (serving worker --slowdown 3)', ['--slowdown', '3'], []]] as const) {
      const j = await joinRun(o, label, [...a], [...b], say);
      joins.push(j);
      say(formatJoin(j));
    }
  }
  if (o.only === 'join') return { joins, ttft1Ms: null, ttft2Ms: null, ttftRatio: null, fourFirstMs: null, fourLastMs: null, fourRatio: null };
  const t1 = await ttft(o, 1, false, say);
  const t2 = await ttft(o, 2, true, say);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const first = Math.min(...t2.four);
  const last = Math.max(...t2.four);
  return { joins, ttft1Ms: Math.round(t1.one), ttft2Ms: Math.round(t2.one), ttftRatio: r2(t2.one / t1.one), fourFirstMs: Math.round(first), fourLastMs: Math.round(last), fourRatio: r2(last / first) };
}

const mark = (ok: boolean): string => (ok ? '✓' : '✗');

function formatJoin(j: JoinRun): string {
  return `  ${j.label}: largest gap ${j.maxGapMs} ms (ending ${j.maxGapAfterJoinMs} ms after the join began) = ${j.ratio}× the median ${j.medianGapMs} ms ${mark(j.ratio <= 3)} (goal ≤ 3); text ${j.sameText ? 'identical' : 'DIFFERS'} ${mark(j.sameText)}; plan changed ${j.epochChanges}× under it${j.epochChanges === 0 ? '' : `: ${j.moves.length > 0 ? j.moves.map((m) => `moved to the warmed plan, feeding it ${m.tokens - m.from} token(s) from position ${m.from}`).join(', ') : 'no move'}${j.replays > 0 ? `, ${j.replays} replay(s) of its context` : ''}`}${j.switch === null ? '' : `; the gap at the switch ${j.switch.gapMs} ms (median ${j.switch.medianBeforeMs} ms on the old plan, ${j.switch.medianAfterMs} ms on the new)`}`;
}

export function formatBenchJoins(r: BenchJoinsResult): string {
  return [
    'joins and prefill (one run)',
    ...r.joins.map(formatJoin),
    ...(r.ttftRatio === null || r.fourRatio === null ? [] : [
      `  TTFT, one prompt: 2 workers ${r.ttft2Ms} ms ÷ 1 worker ${r.ttft1Ms} ms = ${r.ttftRatio} ${mark(r.ttftRatio <= 0.6)} (goal ≤ 0.6)`,
      `  four prompts together on 2 workers: last first token ${r.fourLastMs} ms ÷ first ${r.fourFirstMs} ms = ${r.fourRatio} ${mark(r.fourRatio <= 1.5)} (goal ≤ 1.5)`,
    ]),
  ].join('\n');
}
