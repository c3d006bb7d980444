// A worker node: announces itself, heartbeats, loads the layer range the gateway assigns, and
// runs steps — hidden states go straight to the next stage's subject, the last stage's sampled
// token goes to the gateway that asked. The engine (onnxruntime in a worker thread, KV inside)
// and batching live in runtime/ and stage-runner.ts; this file is the node's wire behaviour.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  HEARTBEAT_MS, bin, f32, i32, isValidId, subjects,
  type AssignMsg, type NodeState, type ProbeMsg, type StepMsg, type WireMessage,
} from '../bus/contract.ts';
import { hearthVersion } from '../bus/version.ts';
import { SILENT_LOG, type Bus, type Log } from '../bus/types.ts';
import { isHearthError } from '../errors/index.ts';
import type { ShardEngine, Provider, Quant } from '../runtime/types.ts';
import type { EngineOptions } from '../runtime/engine.ts';
import type { PrebuiltShard } from '../runtime/shard-session.ts';
import type { SampledToken } from '../sampling/types.ts';
import { StageRunner } from './stage-runner.ts';
import { wallMs } from '../bus/wall-clock.ts';

export interface WorkerNodeOptions {
  readonly bus: Bus;
  readonly cluster: string;
  readonly name: string;
  /** Default: name + random suffix (a restarted process is a new node). */
  readonly id?: string;
  /** Bytes offered for weights + KV. */
  readonly memory: number;
  readonly threads: number;
  /** GFLOP/s from measureSpeed() (or --speed). */
  readonly speed: number;
  /** ms per MB of int4 weights at decode from runtime's probeDecode (slowdown included), or
   *  undefined (--speed given: the planner then goes by speed alone). */
  readonly decodeMsPerMb?: number;
  /** A local checkpoint folder; null = fetch the assigned layers from the gateway. */
  readonly modelDir: string | null;
  /** Where fetched stage weights are cached. */
  readonly cacheDir: string;
  /** Added before every publish to the next stage / the gateway (LAN-latency benchmark). */
  readonly hopDelayMs?: number;
  readonly provider?: Provider;
  /** Warn when no gateway of our cluster has spoken (hello or assignment) within this (default 5 s). */
  readonly gatewayNoticeMs?: number;
  readonly maxBatch?: number;
  /** Test and benchmark hook (≥ 1, default 1): the node behaves as a device this many times
   *  slower — after each engine run it waits (slowdown − 1) × the run's time. The worker command
   *  divides its speed probe by the same factor, so the planner sees what it will get. */
  readonly slowdown?: number;
  readonly log?: Log;
  /** Engine factory (default: runtime's createShardEngine). */
  readonly createEngine?: (dir: string, spec: { start: number; end: number; quant: Quant; threads: number; provider: Provider }, opts?: EngineOptions) => Promise<ShardEngine>;
  /** TEST HOOK (issue 14's spot-check test): corrupt this node's output — hidden states scaled
   *  noise of this relative size added, or, on the last stage, the next token id instead of the
   *  sampled one. Set only by HEARTH_TEST_PERTURB_OUTPUT; never in normal operation. */
  readonly perturbOutput?: number;
  /** Stage-weights fetcher (default: weights' ensureStageWeights). */
  readonly fetchWeights?: (a: AssignMsg, cacheDir: string, log: Log) => Promise<string>;
}

interface Loaded {
  readonly key: string;
  readonly runner: StageRunner;
  readonly engine: ShardEngine;
}

export function makeNodeId(name: string): string {
  const base = name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40) || 'worker';
  return `${base}-${randomBytes(3).toString('hex')}`;
}

export class WorkerNode {
  readonly id: string;
  private readonly opts: WorkerNodeOptions;
  private readonly bus: Bus;
  private readonly log: Log;
  private readonly unsubs: (() => void)[] = [];
  private hb: NodeJS.Timeout | null = null;
  private state: NodeState = 'idle';
  /** The assignment being served (its epoch/gateway/next), once loaded. */
  private active: AssignMsg | null = null;
  private loaded: Loaded | null = null;
  private wanted: AssignMsg | null = null;
  private chain: Promise<void> = Promise.resolve();
  private readonly seqs = new Set<string>();
  /** Sequences the gateway freed, newest last (bounded): a chained step of one of them that was
   *  already under way is dropped, not run (sequence ids are never reused). */
  private readonly freed = new Set<string>();
  private positions = 0;
  private lastHb = { at: Date.now(), positions: 0 };
  private tokS = 0;
  private closed = false;
  /** Recent single-position step times (ms, receive → done, before any simulated link delay) on
   *  the loaded range: the heartbeat reports a low quantile as this node's measured speed. */
  private stepTimes: number[] = [];
  private stepRange: readonly [number, number] | null = null;
  /** A gateway of our cluster has spoken to us (hello or assignment). */
  private heardGateway = false;
  private notice: NodeJS.Timeout | null = null;

  constructor(opts: WorkerNodeOptions) {
    this.opts = opts;
    this.bus = opts.bus;
    this.log = opts.log ?? SILENT_LOG;
    this.id = opts.id ?? makeNodeId(opts.name);
  }

  start(): void {
    const c = this.opts.cluster;
    this.unsubs.push(this.bus.subscribe(subjects.assign(c, this.id), (m) => { if (m.t === 'assign') this.onAssign(m); }));
    this.unsubs.push(this.bus.subscribe(subjects.step(c, this.id), (m) => { if (m.t === 'step') this.onStep(m); }));
    this.unsubs.push(this.bus.subscribe(subjects.free(c), (m) => { if (m.t === 'free') for (const s of m.seqs) this.free(s); }));
    this.unsubs.push(this.bus.subscribe(subjects.hello(c), () => { this.heardGateway = true; this.announce(); }));
    this.unsubs.push(this.bus.subscribe(subjects.probe(c, this.id), (m) => { if (m.t === 'probe') void this.onProbe(m); }));
    // After a NATS server restart the gateway may have lost us: say who we are again.
    this.unsubs.push(this.bus.onStatus((s) => { if (s === 'reconnected') this.announce(); }));
    this.announce();
    this.hb = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    // A valid token with another --cluster joins the bus but no gateway ever answers: say so
    // rather than wait in silence (subjects are per cluster, so that gateway never hears us).
    const wait = this.opts.gatewayNoticeMs ?? 5000;
    this.notice = setTimeout(() => {
      if (this.heardGateway || this.closed) return;
      this.log.warn({ cluster: c, waitedMs: wait },
        `no gateway of cluster "${c}" has been heard from in ${Math.round(wait / 1000)} s; still waiting. ` +
          `Is a gateway running with this cluster name? Its join line shows the name (--cluster NAME); a different name means this worker waits forever`);
    }, wait);
    this.notice.unref();
  }

  /** Leaves the cluster cleanly: the gateway re-plans without waiting for the heartbeat timeout. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.hb !== null) clearInterval(this.hb);
    if (this.notice !== null) clearTimeout(this.notice);
    this.bus.publish(subjects.leave(this.opts.cluster, this.id), { t: 'leave', id: this.id });
    for (const u of this.unsubs) u();
    await this.bus.flush().catch(() => undefined);
    await this.unload();
  }

  // --- membership --------------------------------------------------------------------------

  private announce(): void {
    if (this.closed) return;
    this.bus.publish(subjects.announce(this.opts.cluster, this.id), {
      t: 'announce', id: this.id, name: this.opts.name, memory: this.opts.memory, freeMemory: os.freemem(),
      threads: this.opts.threads, speed: this.opts.speed,
      ...(this.opts.decodeMsPerMb !== undefined ? { decodeMsPerMb: this.opts.decodeMsPerMb } : {}),
      hasModel: this.opts.modelDir !== null,
      provider: this.opts.provider ?? 'cpu', totalMemory: os.totalmem(),
      ...(this.loaded !== null && this.active !== null && this.active.range !== null
        ? { holding: { model: this.active.model.name, start: this.active.range.start, end: this.active.range.end } } : {}),
    });
  }

  private heartbeat(): void {
    const now = Date.now();
    const dt = (now - this.lastHb.at) / 1000;
    const rate = dt > 0 ? (this.positions - this.lastHb.positions) / dt : 0;
    this.tokS = 0.5 * this.tokS + 0.5 * rate; // smoothed: one heartbeat is a noisy window
    this.lastHb = { at: now, positions: this.positions };
    const step = this.measuredStepMs();
    this.bus.publish(subjects.heartbeat(this.opts.cluster, this.id), {
      t: 'heartbeat', id: this.id, epoch: this.active?.epoch ?? -1, state: this.state,
      kvBytes: this.loaded?.engine.kvBytes() ?? 0, weightBytes: this.loaded?.engine.weightBytes() ?? 0, freeMemory: os.freemem(), tokS: Math.round(this.tokS * 10) / 10,
      ...(step !== null && this.stepRange !== null ? { stepMs: Math.round(step * 1000) / 1000, stepRange: this.stepRange } : {}),
    });
  }

  /** The 25th percentile of recent single-position steps: compute, not the queueing of a busy
   *  stage; null until 8 were seen. */
  private measuredStepMs(): number | null {
    if (this.stepTimes.length < 8) return null;
    const a = [...this.stepTimes].sort((x, y) => x - y);
    return a[Math.floor(a.length / 4)] as number;
  }

  private noteStep(ms: number): void {
    this.stepTimes.push(ms);
    if (this.stepTimes.length > 64) this.stepTimes = this.stepTimes.slice(-32);
  }

  /** Answers a link probe (gateway at join, or `hearth doctor`). The simulated link delay applies
   *  as it does to steps, so a "far" node measures far. */
  private async onProbe(m: ProbeMsg): Promise<void> {
    if (this.closed || !isValidId(m.from)) return;
    const delay = this.opts.hopDelayMs ?? 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    this.bus.publish(subjects.probeReply(this.opts.cluster, m.from, this.id), {
      t: 'probe-reply', id: this.id, nonce: m.nonce, wall: wallMs(), version: hearthVersion(),
      got: m.pad?.byteLength ?? 0, pad: m.echo ? m.pad : null,
    });
  }

  // --- assignments -------------------------------------------------------------------------

  private onAssign(m: AssignMsg): void {
    this.heardGateway = true;
    const a = this.active;
    // A re-sent assignment we already hold: say `loaded` again (the first answer may be lost).
    if (a !== null && a.gateway === m.gateway && a.epoch === m.epoch) {
      if (this.state === 'ready' || m.range === null) this.publishLoaded(m, true, null);
      return;
    }
    if (this.wanted !== null && this.wanted.gateway === m.gateway && this.wanted.epoch >= m.epoch) return;
    this.wanted = m;
    this.chain = this.chain.then(() => this.apply(m)).catch((e: unknown) => {
      this.log.error({ err: (e as Error).stack }, 'assignment failed');
    });
  }

  private async apply(m: AssignMsg): Promise<void> {
    if (this.wanted !== m || this.closed) return; // superseded while an earlier one loaded
    // Sequences of the previous plan are replayed by the gateway: their KV is garbage now.
    for (const s of this.seqs) this.loaded?.runner.free(s);
    this.seqs.clear();
    if (m.range === null) {
      this.active = m;
      await this.unload();
      this.state = 'idle';
      this.publishLoaded(m, true, null);
      return;
    }
    const key = `${m.model.name}|${m.range.start}|${m.range.end}|${m.quant}|${m.threads}|${m.model.contextLength ?? ''}`;
    const range = [m.range.start, m.range.end] as const;
    if (this.stepRange === null || this.stepRange[0] !== range[0] || this.stepRange[1] !== range[1]) {
      this.stepTimes = [];
      this.stepRange = range;
    }
    if (this.loaded !== null && this.loaded.key === key) {
      this.loaded.runner.setStages(m.stages ?? 1);
      this.active = m;
      this.state = 'ready';
      this.publishLoaded(m, true, null);
      return;
    }
    this.active = null;
    this.state = 'loading';
    await this.unload();
    try {
      const { dir, prebuilt } = await this.stageSource(m);
      const create = this.opts.createEngine ?? (await import('../runtime/index.ts')).createShardEngine;
      const t0 = Date.now();
      // Rotary tables for the context the gateway serves, not the model's maximum (issue 20).
      // KV bounded by what this node offers, less its weights (issue 20).
      const built: EngineOptions = {
        memoryBytes: this.opts.memory,
        ...(m.kvBytes !== undefined ? { kvBudgetBytes: m.kvBytes } : {}),
        ...(m.model.contextLength !== undefined ? { maxPositions: m.model.contextLength } : {}),
        // The gateway's int4 build, fetched: loaded as is (issue 20).
        ...(prebuilt !== undefined ? { prebuilt } : {}),
      };
      const spec = { start: m.range.start, end: m.range.end, quant: m.quant, threads: m.threads, provider: this.opts.provider ?? 'cpu' } as const;
      const engine = await create(dir, spec, built).catch(async (e: unknown) => {
        // A fetched shard that does not load (or fails its hashes while loading): the tensors, built here.
        if (prebuilt === undefined) throw e;
        this.log.warn({ range: m.range, err: (e as Error).message }, 'the fetched int4 shard did not load: fetching the bf16 tensors and quantizing here instead');
        const { prebuilt: _gone, ...plain } = built;
        return create(await this.modelDirFor(m), spec, plain);
      });
      if (this.wanted !== m || this.closed) { await engine.close(); return; }
      this.loaded = { key, engine, runner: new StageRunner(engine, this.opts.maxBatch !== undefined ? { maxBatch: this.opts.maxBatch } : {}) };
      this.loaded.runner.setStages(m.stages ?? 1);
      this.active = m;
      this.state = 'ready';
      this.log.info({ epoch: m.epoch, range: m.range, next: m.next, ms: Date.now() - t0, weightBytes: engine.weightBytes() }, 'stage loaded');
      this.publishLoaded(m, true, null);
    } catch (e) {
      this.state = 'failed';
      const msg = (e as Error).message;
      this.log.error({ epoch: m.epoch, range: m.range, err: msg }, 'could not load the assigned stage');
      this.publishLoaded(m, false, msg);
    }
  }

  /**
   * Where the stage comes from: a local checkpoint; else, at int4, the shard the gateway built
   * once for the cluster (fetched as int4, loaded without building: issue 20); else (quant none,
   * an older gateway, a failed or refused shard fetch) the stage's tensors, built here. The log
   * says which.
   */
  private async stageSource(m: AssignMsg): Promise<{ dir: string; prebuilt?: PrebuiltShard }> {
    const local = this.opts.modelDir;
    if ((local !== null && existsSync(path.join(local, 'config.json'))) || this.opts.fetchWeights !== undefined) return { dir: await this.modelDirFor(m) };
    if (m.quant !== 'int4') {
      this.log.info({ range: m.range, quant: m.quant }, 'fetching the stage\'s tensors (prebuilt shards are int4 only)');
      return { dir: await this.modelDirFor(m) };
    }
    const { ensureStageShard } = await import('../weights/index.ts');
    const { resolveShardCacheDir } = await import('../runtime/shard-cache.ts');
    const range = m.range as { start: number; end: number };
    let lastPct = -1;
    try {
      const got = await ensureStageShard({
        gatewayUrl: m.model.gatewayUrl, token: m.model.weightsToken, model: m.model.name, start: range.start, end: range.end,
        cacheDir: this.opts.cacheDir,
        // The node's shard cache; with it off, a folder beside the fetched stages.
        shardCacheDir: resolveShardCacheDir() ?? path.join(this.opts.cacheDir, 'shards'),
        onProgress: (done, total) => {
          const pct = total > 0 ? Math.floor((100 * done) / total / 10) * 10 : 100;
          if (pct !== lastPct) { lastPct = pct; this.log.info({ done, total, pct }, 'fetching the int4 shard'); }
        },
      });
      if ('offered' in got) {
        this.log.info({ range, why: got.why }, 'the gateway offers no int4 shard of this stage: fetching its bf16 tensors and quantizing here');
        return { dir: await this.modelDirFor(m) };
      }
      const bytes = got.manifest.files.reduce((n, f) => n + f.size, 0);
      this.log.info({ range, key: got.prebuilt.key, fetchedBytes: got.fetchedBytes, shardBytes: bytes },
        got.fetchedBytes === 0 ? 'int4 shard already in the cache: loading it, nothing fetched' : 'int4 shard fetched from the gateway: loading it, nothing quantized here');
      return { dir: got.dir, prebuilt: got.prebuilt };
    } catch (e) {
      this.log.warn({ range, err: (e as Error).message }, 'fetching the int4 shard failed: fetching the bf16 tensors and quantizing here instead');
      return { dir: await this.modelDirFor(m) };
    }
  }

  private async modelDirFor(m: AssignMsg): Promise<string> {
    const local = this.opts.modelDir;
    if (local !== null && existsSync(path.join(local, 'config.json'))) return local;
    if (this.opts.fetchWeights !== undefined) return this.opts.fetchWeights(m, this.opts.cacheDir, this.log);
    const { ensureStageWeights } = await import('../weights/index.ts');
    const range = m.range as { start: number; end: number };
    let lastPct = -1;
    return ensureStageWeights({
      gatewayUrl: m.model.gatewayUrl, token: m.model.weightsToken, model: m.model.name,
      start: range.start, end: range.end, numLayers: m.model.numLayers, cacheDir: this.opts.cacheDir,
      onProgress: (done, total) => {
        const pct = total > 0 ? Math.floor((100 * done) / total / 10) * 10 : 100;
        if (pct !== lastPct) { lastPct = pct; this.log.info({ done, total, pct }, 'fetching stage weights'); }
      },
    });
  }

  private publishLoaded(m: AssignMsg, ok: boolean, error: string | null): void {
    this.bus.publish(subjects.loaded(this.opts.cluster, this.id), {
      t: 'loaded', id: this.id, epoch: m.epoch, ok, error, weightBytes: this.loaded?.engine.weightBytes() ?? 0,
    });
  }

  private async unload(): Promise<void> {
    const l = this.loaded;
    this.loaded = null;
    if (l === null) return;
    await l.runner.close();
    await l.engine.close();
  }

  private free(seq: string): void {
    this.freed.add(seq);
    if (this.freed.size > FREED_CAP) {
      const oldest = this.freed.values().next();
      if (oldest.done !== true) this.freed.delete(oldest.value);
    }
    if (!this.seqs.delete(seq)) return;
    this.loaded?.runner.free(seq);
  }

  // --- steps -------------------------------------------------------------------------------

  private onStep(m: StepMsg): void {
    const arrived = wallMs();
    const hop = arrived - m.sentAt;
    const a = this.active;
    const l = this.loaded;
    if (a === null || l === null || a.epoch !== m.epoch || a.gateway !== m.gateway || this.state !== 'ready') {
      this.reply(m, [...m.hopMs, hop], [...m.stageMs, 0], null, null, { code: 'HEARTH_ERR_PLAN_CHANGED', message: `node ${this.id} is not serving epoch ${m.epoch}` });
      return;
    }
    // A step of a sequence the gateway has ended (a chained step already on its way): drop it.
    if (this.freed.has(m.seq)) return;
    this.seqs.add(m.seq);
    const hidden = m.hidden === null ? undefined : f32(m.hidden);
    const item = {
      seq: m.seq, pos: m.pos, n: m.n, tokens: i32(m.tokens),
      ...(hidden !== undefined ? { hidden } : {}),
      ...(m.fork !== null ? { fork: m.fork } : {}),
      ...(m.exact === true ? { exact: true } : {}),
      ...(m.rewind === true ? { rewind: true } : {}),
      // A verify step: the last stage returns a row of logits (a choice) per position asked.
      ...(a.next === null && m.choices !== undefined && m.choices > 1 ? { logitRows: m.choices } : {}),
      ...(a.next === null && m.wantHidden === true ? { wantHidden: true } : {}),
    };
    const last = a.next === null;
    l.runner.submit({ item, promptLen: m.promptLen, sampling: m.sampling, wantToken: last && m.wantToken, wantLogits: last && m.wantLogits })
      .then(async (r) => {
        const slow = this.opts.slowdown ?? 1;
        if (slow > 1) await new Promise((res) => setTimeout(res, (wallMs() - arrived) * (slow - 1)));
        if (m.n === 1) this.noteStep(wallMs() - arrived);
        this.positions += m.n;
        const hops = [...m.hopMs, hop];
        // The simulated LAN delay counts as part of the hop: stamp before sleeping.
        const sentAt = wallMs();
        const stages = [...m.stageMs, sentAt - arrived];
        const delay = Math.max(this.opts.hopDelayMs ?? 0, m.delayMs);
        if (delay > 0) await new Promise((res) => setTimeout(res, delay));
        if (this.freed.has(m.seq)) {
          // Freed while this step ran: the engine may hold KV again for it.
          this.seqs.delete(m.seq);
          l.runner.free(m.seq);
          return;
        }
        if (a.next !== null) {
          if (r.hidden === undefined) throw new Error('stage produced no hidden states');
          const out = this.opts.perturbOutput !== undefined ? perturbHidden(r.hidden, this.opts.perturbOutput) : r.hidden;
          this.bus.publish(subjects.step(this.opts.cluster, a.next), { ...m, t: 'step', hidden: bin(out), sentAt, hopMs: hops, stageMs: stages });
        } else {
          const tok = r.token ?? null;
          const token = tok !== null && this.opts.perturbOutput !== undefined ? { token: (tok.token + 1) % (a.model.vocabSize || 1) } : tok;
          // The next step first (it is on the critical path), then the token to the gateway.
          if (token !== null) this.chainNext(m, a, token.token, sentAt);
          this.reply(m, hops, stages, token, r.logits ?? null, null, sentAt, r.tokens, m.wantHidden === true ? r.hidden : undefined);
        }
      })
      .catch((e: unknown) => {
        // Freed while it waited in the stage's queue: its KV went before it ran. Nobody waits
        // for this answer (the gateway ended the sequence).
        if (this.freed.has(m.seq)) return;
        const code = isHearthError(e) ? e.code : 'HEARTH_ERR_ENGINE';
        this.log.warn({ seq: m.seq, pos: m.pos, err: (e as Error).message }, 'step failed');
        this.reply(m, [...m.hopMs, hop], [...m.stageMs, wallMs() - arrived], null, null, { code, message: (e as Error).message });
      });
  }

  /** Last stage: sends the next decode step of a chained sequence straight to stage 0. */
  private chainNext(m: StepMsg, a: AssignMsg, token: number, sentAt: number): void {
    const c = m.chain;
    const first = a.first;
    if (c === undefined || c === null || c.left <= 1 || !m.wantToken || first === undefined || first === null) return;
    if (c.stop.includes(token)) return;
    // A verify step (speculative decoding) is never chained: the gateway decides what it keeps.
    if (m.choices !== undefined && m.choices > 1) return;
    // The chained step extends this one: no rollback to repeat, one choice.
    const { rewind: _rewind, choices: _choices, ...rest } = m;
    const next: StepMsg = {
      ...rest, stepId: m.stepId + 1, pos: m.pos + m.n, n: 1, tokens: bin(Int32Array.of(token)), hidden: null,
      wantToken: true, wantLogits: false, fork: null, exact: false, sentAt, hopMs: [], stageMs: [],
      chain: { left: c.left - 1, stop: c.stop },
    };
    // A one-stage plan: stage 0 is this node, no bus hop needed.
    if (first === this.id) setImmediate(() => this.onStep(next));
    else this.bus.publish(subjects.step(this.opts.cluster, first), next);
  }

  private reply(m: StepMsg, hops: number[], stageMs: number[], token: SampledToken | null, logits: Float32Array | null, error: { code: string; message: string } | null, sentAt = wallMs(), tokens?: readonly SampledToken[], hidden?: Float32Array): void {
    // Errors go to the fault subject (any stage may say it failed), results to the result subject
    // (with per-node credentials only the last stage may publish there: issue 14).
    this.bus.publish(error !== null ? subjects.fault(this.opts.cluster, m.gateway, this.id) : subjects.result(this.opts.cluster, m.gateway), {
      t: 'result', id: this.id, epoch: m.epoch, seq: m.seq, stepId: m.stepId,
      token: token === null ? null : plainToken(token),
      ...(tokens === undefined || tokens.length === 0 ? {} : { tokens: tokens.map(plainToken) }),
      logits: logits === null ? null : bin(logits), error, sentAt, hopMs: hops, stageMs,
      ...(hidden === undefined ? {} : { hidden: bin(hidden) }),
    });
  }
}

/** Freed sequence ids remembered (a chained step in flight is at most a few steps behind). */
const FREED_CAP = 4096;

/** The test hook's corruption: deterministic noise of `rel` × the tensor's largest magnitude. */
function perturbHidden(h: Float32Array, rel: number): Float32Array {
  let max = 0;
  for (let i = 0; i < h.length; i++) max = Math.max(max, Math.abs(h[i]!));
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = h[i]! + rel * max * Math.sin(i * 12.9898);
  return out;
}

/** msgpack has no `undefined`: send only the fields that are set. */
function plainToken(t: SampledToken): SampledToken {
  return {
    token: t.token,
    ...(t.logprob !== undefined ? { logprob: t.logprob } : {}),
    ...(t.top !== undefined ? { top: t.top.map((x) => ({ token: x.token, logprob: x.logprob })) } : {}),
  };
}

