// `hearth bench --cluster --speculate`: what speculative decoding buys on 2 worker processes with a
// delay added per hop (default 2 ms: a LAN), measured in one run, speculation off and on
// alternating, best of `rounds` each. Three cases:
//   json — a json_schema answer with fixed keys (grammar jump-forward drafts the keys and
//          punctuation; the model still verifies every draft);
//   copy — a story whose text appears earlier in the prompt (prompt lookup drafts it): the model's
//          own greedy story from "Once upon a time", then that opening again;
//   plain — a plain prompt (what speculation must not slow down).
// Per case: tokens per decode pass, decode tok/s off and on, and whether both gave the same tokens
// (they must: speculation is exact). Off is the ordinary serving path: unconstrained decoding
// chains its steps on the workers (two hops per token); with speculation on, steps go stepwise
// while drafts are found and chain in bursts where none is.

import { randomBytes } from 'node:crypto';
import { NatsBus } from '../bus/index.ts';
import { createConstraint } from '../chat/constraint/index.ts';
import { openCheckpoint } from '../model/index.ts';
import type { Quant } from '../runtime/types.ts';
import { GREEDY } from '../sampling/types.ts';
import { DEFAULT_SPECULATE_OPTIONS, createScheduler, type Scheduler } from '../scheduler/index.ts';
import type { GenerateRequest, TokenConstraint } from '../scheduler/types.ts';
import { loadTokenizer } from '../tokenizer/index.ts';
import { spawnWorker, stopWorkers, waitLive } from './bench-cluster.ts';
import { createClusterPipeline, type ClusterPipeline } from './cluster-pipeline.ts';
import { modelCostsFromCheckpoint } from './model-costs.ts';
import { startNatsServer } from './nats-server.ts';

export interface BenchSpeculateOptions {
  readonly modelDir: string;
  readonly quant?: Quant;
  readonly threads?: number;
  /** Delay added before every hop (default 2 ms). */
  readonly hopDelayMs?: number;
  /** Tokens generated per case (default 96). */
  readonly decodeTokens?: number;
  /** Most drafts per step (default DEFAULT_SPECULATE_OPTIONS.maxDraft). */
  readonly maxDraft?: number;
  readonly rounds?: number;
  readonly onProgress?: (line: string) => void;
}

export interface BenchSpeculateRow {
  readonly name: string;
  readonly tokens: number;
  readonly offTokS: number;
  readonly onTokS: number;
  /** onTokS / offTokS. */
  readonly speedup: number;
  /** Decode tokens per decode pass with speculation on (1.0 without). */
  readonly tokensPerPass: number;
  readonly drafted: number;
  readonly accepted: number;
  /** Speculation on and off gave the same tokens. */
  readonly identical: boolean;
}

export interface BenchSpeculateResult {
  readonly model: string;
  readonly quant: Quant;
  readonly hopDelayMs: number;
  readonly rows: readonly BenchSpeculateRow[];
}

/** A json_schema with fixed keys: every key required, nothing else allowed. */
export const FIXED_KEYS_SCHEMA = {
  type: 'object',
  properties: {
    city: { enum: ['Paris', 'London', 'Berlin'] },
    country: { enum: ['France', 'United Kingdom', 'Germany'] },
    unit: { const: 'celsius' },
    days: { type: 'integer', minimum: 1, maximum: 7 },
    sunny: { type: 'boolean' },
    wind: { enum: ['calm', 'breezy', 'windy'] },
  },
  required: ['city', 'country', 'unit', 'days', 'sunny', 'wind'],
  additionalProperties: false,
} as const;

interface Run { tokens: number[]; tokS: number; passes: number; decoded: number; drafted: number; accepted: number }

let runs = 0;

async function timed(s: Scheduler, req: GenerateRequest): Promise<Run> {
  // Two schedulers share the pipeline and number their sequences alike: a fresh id per run keeps
  // sequence ids unique (workers drop steps of an id they were told to free).
  req = { ...req, id: `${req.id}-${runs++}` };
  const before = s.speculation();
  const tokens: number[] = [];
  let first = 0;
  let last = 0;
  for await (const ev of s.generate(req)) {
    if (ev.type !== 'token') continue;
    const now = performance.now();
    if (tokens.length === 0) first = now;
    last = now;
    tokens.push(ev.token.token);
  }
  const after = s.speculation();
  return {
    tokens, tokS: tokens.length > 1 ? (tokens.length - 1) / ((last - first) / 1000) : 0,
    passes: after.passes - before.passes, decoded: after.tokens - before.tokens,
    drafted: after.drafted - before.drafted, accepted: after.accepted - before.accepted,
  };
}

export async function benchSpeculate(opts: BenchSpeculateOptions): Promise<BenchSpeculateResult> {
  const quant = opts.quant ?? 'none';
  const threads = opts.threads ?? 1;
  const hopDelayMs = opts.hopDelayMs ?? 2;
  const decode = opts.decodeTokens ?? 96;
  const rounds = Math.max(1, opts.rounds ?? 2);
  const say = opts.onProgress ?? (() => undefined);
  const ckpt = openCheckpoint(opts.modelDir);
  const cfg = ckpt.config;
  const cost = modelCostsFromCheckpoint(ckpt, { quant, kvTokens: 4096 });
  ckpt.close();
  const tok = await loadTokenizer(opts.modelDir);
  const token = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token });
  const cluster = 'bench';
  let bus: NatsBus | null = null;
  let pipeline: ClusterPipeline | null = null;
  const workers = ['w1', 'w2'].map((name) => spawnWorker(nats.url, token, cluster, name, { modelDir: opts.modelDir, threads }));
  const rows: BenchSpeculateRow[] = [];
  try {
    say('loading 2 workers');
    bus = await NatsBus.connect({ servers: nats.url, token, name: 'hearth-bench-gateway' });
    pipeline = createClusterPipeline({
      // 'balanced': this compares on the 2-worker split (see bench-cluster.ts).
      bus, cluster, cost, quant, settleMs: 1500, hopDelayMs, objective: 'balanced',
      model: { name: 'bench', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
    });
    await waitLive(pipeline, 2, 900_000, () => workers.map((w) => w.log()).join('\n'));
    const contextLength = Math.min(cfg.maxPositions, 4096);
    const off = createScheduler(pipeline, { prefixCache: 0, contextLength });
    const on = createScheduler(pipeline, { prefixCache: 0, contextLength, speculate: { ...DEFAULT_SPECULATE_OPTIONS, ...(opts.maxDraft === undefined ? {} : { maxDraft: opts.maxDraft }) } });
    const enc = (text: string): Int32Array => Int32Array.from(tok.encode(text, { addSpecialTokens: true }));
    const stops = tok.eosTokenIds;
    // The copy case's story: the model's own greedy continuation, so a model that copies well
    // finds it ahead of it verbatim.
    const opening = 'Once upon a time';
    const story = await timed(off, { id: 'story', prompt: enc(opening), maxTokens: decode, sampling: GREEDY, stopTokens: stops });
    const cases: { name: string; req: () => GenerateRequest }[] = [
      {
        name: 'json (fixed keys)',
        req: () => ({
          id: 'json', prompt: enc('Give the weather as JSON with the keys city, country, unit, days, sunny and wind.\n'), maxTokens: decode, sampling: GREEDY, stopTokens: stops,
          constraint: withinVocab(createConstraint({ kind: 'json_schema', schema: FIXED_KEYS_SCHEMA, maxTokens: decode }, tok), tok.vocabSize),
        }),
      },
      { name: 'copy (text in prompt)', req: () => ({ id: 'copy', prompt: enc(`${opening}${tok.decode(story.tokens)}\n\n${opening}`), maxTokens: decode, sampling: GREEDY, stopTokens: stops }) },
      { name: 'plain', req: () => ({ id: 'plain', prompt: enc('The weather today is'), maxTokens: decode, sampling: GREEDY, stopTokens: stops }) },
    ];
    for (const c of cases) {
      try {
        await timed(off, { ...c.req(), maxTokens: 4 });
      } catch (e) {
        // A vocabulary that cannot spell the case's output (tinystories' has no `{`).
        say(`${c.name}: skipped (${(e as Error).message})`);
        continue;
      }
      let bestOff: Run | null = null;
      let bestOn: Run | null = null;
      for (let r = 0; r < rounds; r++) {
        const a = await timed(off, c.req());
        const b = await timed(on, c.req());
        if (bestOff === null || a.tokS > bestOff.tokS) bestOff = a;
        if (bestOn === null || b.tokS > bestOn.tokS) bestOn = b;
        say(`${c.name}, round ${r + 1}/${rounds}: off ${a.tokS.toFixed(1)} tok/s, on ${b.tokS.toFixed(1)} tok/s, ${(b.decoded / Math.max(1, b.passes)).toFixed(2)} tokens/pass`);
      }
      const a = bestOff as Run;
      const b = bestOn as Run;
      rows.push({
        name: c.name, tokens: b.tokens.length, offTokS: a.tokS, onTokS: b.tokS, speedup: b.tokS / a.tokS,
        tokensPerPass: b.passes > 0 ? b.decoded / b.passes : 1, drafted: b.drafted, accepted: b.accepted,
        identical: a.tokens.length === b.tokens.length && a.tokens.every((x, i) => x === b.tokens[i]),
      });
    }
  } finally {
    await stopWorkers(workers);
    await pipeline?.close();
    await bus?.close();
    await nats.stop();
  }
  return { model: opts.modelDir, quant, hopDelayMs, rows };
}

/** Checkpoints pad their vocabulary past the tokenizer's (see api/chat-route.ts withinVocab). */
function withinVocab(c: TokenConstraint, vocabSize: number): TokenConstraint {
  return {
    pick: (logits, sampling, pos) => c.pick(logits.length > vocabSize ? logits.subarray(0, vocabSize) : logits, sampling, pos),
    accept: (t) => c.accept(t),
    done: () => c.done(),
    ...(c.forced === undefined ? {} : { forced: (max: number) => c.forced!(max) }),
  };
}

export function formatBenchSpeculate(r: BenchSpeculateResult): string {
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const head = `speculative decoding bench: ${r.model} (quant ${r.quant}, 2 workers, ${r.hopDelayMs} ms added per hop, greedy)`;
  const cols = ['case', 'tokens', 'off tok/s', 'on tok/s', 'on ÷ off', 'tokens/pass', 'drafted', 'accepted', 'identical'];
  const rows = r.rows.map((x) => [x.name, String(x.tokens), f(x.offTokS), f(x.onTokS), f(x.speedup, 2), f(x.tokensPerPass, 2), String(x.drafted), String(x.accepted), x.identical ? 'yes' : 'NO']);
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0))).join('  ');
  return [head, line(cols), ...rows.map(line)].join('\n');
}
