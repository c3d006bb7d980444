// The gateway: the OpenAI API, the scheduler and the cluster coordinator over one bus. Used by
// `hearth gateway` (joining an existing nats-server) and `hearth up` (which starts one).

import os from 'node:os';
import type { FastifyInstance } from 'fastify';
import { ANONYMOUS_OWNER, createApp, ownerHash, jsonResponseStore, memoryResponseStore, ownerShareBytes, RESPONSE_STORE_DEFAULTS, type RequestDoneInfo, type ResponseStore } from '../api/index.ts';
import { uiRoutes } from '../api/ui/index.ts';
import { NatsBus, type Bus } from '../bus/index.ts';
import { speaksForItself, subjects, type AnnounceMsg } from '../bus/contract.ts';
import { createClusterPipeline, kvReserveTokens, modelCostsFromCheckpoint, stageBytes, type ClusterPipeline, type ModelCost } from '../cluster/index.ts';
import type { NodeTrust } from '../cluster/coordinator.ts';
import { SpotChecker, toleranceFor } from '../trust/index.ts';
import type { HearthConfig } from '../config/index.ts';
import { openCheckpoint } from '../model/index.ts';
import { createMetrics, instrumentRequests, metricsRoute, type Logger } from '../observability/index.ts';
import { DEFAULT_SPECULATE_OPTIONS, createScheduler, type Scheduler } from '../scheduler/index.ts';
import type { GenerateRequest, Generator } from '../scheduler/types.ts';
import { HearthError } from '../errors/index.ts';
import { ShardBuilds, WeightsGrants, weightsRoutes } from '../weights/index.ts';
import { resolveShardCacheDir } from '../runtime/shard-cache.ts';
import { defaultInt4Block, defaultKvDtype } from '../runtime/shard-session.ts';
import { openMcpServers } from '../mcp/index.ts';
import { guardProcess } from './process-guard.ts';
import { loadServedModel } from './served-model.ts';

export interface GatewayOptions {
  readonly cfg: Readonly<HearthConfig>;
  readonly modelDir: string;
  readonly bus: Bus;
  /** The cluster token: workers present it to fetch weights from this gateway. */
  readonly token: string;
  readonly log: Logger;
  /** Shown with the model (the demo's "its text is random"). */
  readonly notice?: string;
  /** Local workers are starting (hearth up): requests wait for them. Default false: with no
   *  worker ever joined, requests fail at once with the join line. */
  readonly expectWorkers?: boolean;
  /** How a device joins: the command without the token (page, /v1/cluster, no-worker errors). */
  readonly join?: JoinInfo;
}

export interface GatewayTrustOptions {
  /** Per-node credentials (src/trust/authority.ts). */
  readonly trust?: NodeTrust;
}

export interface JoinInfo {
  /** e.g. HEARTH_TOKEN=<token> ./hearth worker --join nats://192.168.1.5:4222 --cluster default */
  readonly command: string;
  /** Why other devices cannot use it yet (NATS on loopback only), when that is so. */
  readonly note: string | null;
}

/** Quotes a word for a POSIX shell only when it needs it, so the line stays copy-paste safe. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_.,:/=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface Gateway {
  /** http://host:port (loopback form when listening on all interfaces). */
  readonly origin: string;
  readonly pipeline: ClusterPipeline;
  readonly scheduler: Scheduler;
  readonly app: FastifyInstance;
  /** Stops taking requests, lets running streams finish (up to drainMs), then closes. */
  close(): Promise<void>;
}

/**
 * Stored Responses (previous_response_id) in NATS JetStream KV, so every gateway of the cluster can
 * continue them; in this process when the bus is not NATS or the server runs without JetStream.
 * One bucket per owner (API key hash), each with its share of the bytes (response-store.ts).
 */
async function openResponseStore(bus: Bus, cluster: string, apiKeys: readonly string[], log: Logger): Promise<ResponseStore> {
  const d = RESPONSE_STORE_DEFAULTS;
  const share = ownerShareBytes(apiKeys.length, d);
  if (bus instanceof NatsBus) {
    const prefix = `hearth_responses_${cluster.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const open = (owner: string) => bus.openKv({ bucket: `${prefix}_${owner}`, ttlMs: d.ttlMs, maxBytes: share, maxValueBytes: d.maxEntryBytes });
    try {
      // JetStream there? Opening the first bucket that will be used tells (no stray probe bucket).
      await open(apiKeys[0] === undefined ? ANONYMOUS_OWNER : ownerHash(apiKeys[0]));
      log.info({ bucket: `${prefix}_*`, ownerBytes: share }, 'stored responses in NATS JetStream KV, a bucket per API key');
      return jsonResponseStore(open, d.maxEntryBytes);
    } catch (e) {
      log.warn({ err: String(e) }, 'NATS JetStream KV unavailable (enable jetstream in nats-server.conf); stored responses stay in this gateway\'s memory');
    }
  }
  return memoryResponseStore(share, d);
}

/** EADDRINUSE / EACCES from listen, as one line that says what to do. */
function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new HearthError('HEARTH_ERR_PORT_BUSY', [port, ` on ${host} (another program listens there)`, '--port N (or HEARTH_PORT; 0 picks a free one)']);
  if (code === 'EACCES') return new HearthError('HEARTH_ERR_STARTUP', [`not allowed to listen on ${host}:${port} (ports below 1024 need root); use --port 8080 or another above 1023`]);
  if (code === 'EADDRNOTAVAIL') return new HearthError('HEARTH_ERR_STARTUP', [`${host} is not an address of this machine; use --host 127.0.0.1 (or 0.0.0.0 for every interface)`]);
  return e;
}

/** An address other devices can use to reach a server listening on `host`. */
export function reachableHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host;
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export async function startGateway(o: GatewayOptions & GatewayTrustOptions): Promise<Gateway> {
  const { cfg, log } = o;
  const { model, config } = await loadServedModel(o.modelDir, cfg.model.id, cfg.model.maxContext, o.notice);
  const ckpt = openCheckpoint(o.modelDir);
  // Plan with a KV reserve (model-costs.ts kvReserveTokens); KV grows past it within each node's offer.
  const cost = modelCostsFromCheckpoint(ckpt, { quant: cfg.model.quant, kvTokens: kvReserveTokens(model.contextLength), maxPositions: model.contextLength });
  ckpt.close();
  const metrics = createMetrics({ enabled: cfg.metrics.enabled });

  // The API is registered before we listen, but workers need the listening URL (weights), and the
  // pipeline needs that URL: so the app gets a generator that forwards to the scheduler made after.
  let scheduler: Scheduler | null = null;
  let pipeline: ClusterPipeline | null = null;
  const generator: Generator = {
    generate: (req: GenerateRequest) => scheduler!.generate(req),
    load: () => scheduler?.load() ?? { running: 0, waiting: 0 },
    hiddenStates: (req) => scheduler!.hiddenStates(req),
  };
  const onRequestDone = (info: RequestDoneInfo): void => {
    if (info.error !== null) metrics.errors.inc({ code: info.error });
    if (info.ttftMs !== null) {
      metrics.timeToFirstToken.observe(info.ttftMs / 1000);
      if (info.completionTokens > 1) metrics.interTokenLatency.observe((info.durationMs - info.ttftMs) / 1000 / (info.completionTokens - 1));
    }
    if (info.completionTokens > 0) metrics.generatedTokens.inc(info.completionTokens);
  };
  const weightsGrants = new WeightsGrants();
  const shards = startShardBuilds(o.modelDir, model.id, cfg.model.quant, config.tieEmbeddings, weightsGrants, log, o.bus, cfg.cluster.name);
  const responseStore = await openResponseStore(o.bus, cfg.cluster.name, cfg.server.apiKeys, log);
  // Checked before the app exists: a broken mcp.configFile stops the start, naming what to change.
  const mcpServers = openMcpServers(cfg.mcp.configFile, cfg.server.apiKeys, ownerHash, (msg) => log.warn(msg));
  const app = await createApp({
    model,
    responseStore,
    mcp: { servers: mcpServers, limits: { maxRounds: cfg.mcp.maxRounds, timeoutMs: cfg.mcp.timeoutMs } },
    generator,
    apiKeys: cfg.server.apiKeys,
    limits: {
      bodyBytes: cfg.limits.bodyBytes,
      requestTimeoutMs: cfg.limits.requestTimeoutMs,
      bodyIdleMs: cfg.limits.bodyIdleMs,
      maxTokensDefault: cfg.limits.defaultMaxTokens,
      maxQueue: cfg.limits.maxQueue,
      maxConcurrent: cfg.limits.maxConcurrentSequences,
      maxPerRequest: cfg.limits.maxSequencesPerRequest,
      maxTokens: cfg.limits.maxTokens,
      hostedTools: cfg.server.hostedTools,
    },
    cluster: () => clusterView(),
    clusterDoctor: async () => {
      if (pipeline === null) return undefined;
      const { runDoctor } = await import('../cluster/doctor.ts');
      return runDoctor({
        bus: o.bus, cluster: cfg.cluster.name, url: 'nats://HOST:PORT', listenMs: 1200, cost, gatewayOnBus: true,
        stages: pipeline.coordinator.plan()?.stages ?? [],
        serving: pipeline.clusterSnapshot().forecast,
        ...(o.join !== undefined ? { joinCommand: o.join.command.replace(/HEARTH_TOKEN=\S+/, 'HEARTH_TOKEN=…') } : {}),
      });
    },
    ready: () => pipeline?.coordinator.plan()?.live === true,
    logger: false,
    errorLog: log,
    accessLog: log,
    logPrompts: cfg.logging.logPrompts,
    onRequestDone,
    extraRoutes: async (a) => {
      instrumentRequests(a, metrics);
      metricsRoute(a, metrics);
      if (cfg.server.ui) uiRoutes(a);
      // Workers fetch only their own layers' tensors here, with the grant of their assignment
      // (not the cluster token, not an API key: issue 19).
      await a.register(weightsRoutes, { modelDir: o.modelDir, modelId: model.id, grants: weightsGrants, shards, quant: cfg.model.quant });
    },
  });
  try {
    await app.listen({ host: cfg.server.host, port: cfg.server.port });
  } catch (e) {
    await app.close().catch(() => undefined);
    throw listenError(e, cfg.server.host, cfg.server.port);
  }
  const addr = app.server.address();
  const port = addr !== null && typeof addr === 'object' ? addr.port : cfg.server.port;
  const publicHost = process.env['HEARTH_PUBLIC_HOST'] ?? reachableHost(cfg.server.host);
  const hostForUrl = (h: string): string => (h.includes(':') ? `[${h}]` : h);

  pipeline = createClusterPipeline({
    bus: o.bus,
    cluster: cfg.cluster.name,
    model: {
      name: model.id,
      numLayers: config.numLayers,
      hiddenSize: config.hiddenSize,
      vocabSize: config.vocabSize,
      gatewayUrl: `http://${hostForUrl(publicHost)}:${port}`,
      // Replaced per node and stage by a grant from weightsGrants (issue 19).
      weightsToken: '',
      // Stages build rotary tables for the context served, not the model's maximum (issue 20).
      contextLength: model.contextLength,
    },
    cost,
    quant: cfg.model.quant,
    log,
    nodeTimeoutMs: cfg.cluster.lostAfterMs,
    objective: cfg.cluster.plan,
    expectWorkers: o.expectWorkers ?? false,
    ...(o.join !== undefined ? { joinHint: o.join.command } : {}),
    ...(o.trust !== undefined ? { trust: o.trust } : {}),
    weightsGrants,
  });
  // Spot-checking (issue 14): a sampled fraction of sequences recomputed here, off the event loop.
  const spot = cfg.cluster.spotCheckRate > 0 ? startSpotChecker(pipeline, o.bus, o.modelDir, cfg, cost, log, metrics, model.contextLength) : null;
  scheduler = createScheduler(pipeline, {
    maxConcurrent: cfg.limits.maxConcurrentSequences,
    maxQueue: cfg.limits.maxQueue,
    maxPerRequest: cfg.limits.maxSequencesPerRequest,
    prefillChunk: cfg.limits.prefillChunk,
    speculate: cfg.limits.speculativeDraft > 0 ? { ...DEFAULT_SPECULATE_OPTIONS, maxDraft: cfg.limits.speculativeDraft } : null,
    contextLength: model.contextLength,
    vocabSize: config.vocabSize,
    tokenizerVocab: model.tokenizer.vocabSize,
    onReplay: (seq, epoch, tokens) => log.warn({ seq, epoch, tokens }, 'replaying a sequence on the new plan'),
  });
  const pipe = pipeline;
  const sched = scheduler;

  function clusterView(): unknown {
    if (pipeline === null) return { epoch: 0, live: false, model: { id: model.id, numLayers: config.numLayers }, nodes: [], stages: [] };
    const snap = pipeline.clusterSnapshot();
    return {
      ...snap,
      model: {
        id: model.id, family: config.family, numLayers: config.numLayers, quant: cfg.model.quant, contextLength: model.contextLength,
        ...(model.notice !== undefined ? { notice: model.notice } : {}),
      },
      load: sched.load(),
      join: o.join ?? null,
      spotCheck: { rate: cfg.cluster.spotCheckRate, memoryMb: cfg.cluster.spotCheckMemoryMb, ...(spot?.stats ?? { sequences: 0, comparisons: 0, failures: 0, worstPassingError: 0, uncheckable: [], peakEngines: 0 }) },
    };
  }

  // Gauges sampled once a second (cheap), so a scrape sees the cluster as it is.
  const gauges = setInterval(() => {
    const load = sched.load();
    metrics.queueDepth.set(load.waiting);
    metrics.runningSequences.set(load.running);
    metrics.planEpoch.set(pipe.epoch());
    metrics.speculation.record(sched.speculation());
    const snap = pipe.clusterSnapshot();
    for (const n of snap.nodes) metrics.kvBytes.set({ node: n.name }, n.memory.kvBytes);
    // Every hop and stage time the results carried since the last tick, into the histograms.
    for (const ms of pipe.hops.samples()) metrics.hopLatency.observe(ms / 1000);
    pipe.hops.reset();
    pipe.stages.samples().forEach((times, i) => {
      const node = snap.stages[i]?.node ?? `stage-${i}`;
      for (const ms of times) metrics.stageStep.observe({ node, stage: String(i) }, ms / 1000);
    });
    pipe.stages.reset();
  }, 1000);
  gauges.unref();

  // Serving from here on: nothing that escapes a handler may end the process.
  const unguard = guardProcess(log, () => metrics.errors.inc({ code: 'HEARTH_ERR_INTERNAL' }));
  const listenHost = cfg.server.host === '0.0.0.0' || cfg.server.host === '::' ? '127.0.0.1' : cfg.server.host;
  return {
    origin: `http://${hostForUrl(listenHost)}:${port}`,
    pipeline: pipe,
    scheduler: sched,
    app,
    async close() {
      clearInterval(gauges);
      // fastify.close stops accepting, then waits for in-flight requests (streams included).
      const drained = app.close();
      const timer = new Promise((r) => setTimeout(r, cfg.server.drainMs).unref());
      await Promise.race([drained, timer]);
      sched.clear();
      await pipe.close();
      await spot?.close();
      await mcpServers.close();
      shards?.close();
      unguard();
    },
  };
}

/**
 * int4: each stage is quantized once, here, when its assignment (and grant) is made, and workers
 * fetch the built shard instead of bf16 tensors (issue 20). null (workers fetch tensors) at quant
 * none or with the shard cache off.
 */
function startShardBuilds(modelDir: string, modelId: string, quant: GatewayOptions['cfg']['model']['quant'], tieEmbeddings: boolean, grants: WeightsGrants, log: Logger, bus: Bus, cluster: string): ShardBuilds | null {
  const cacheDir = resolveShardCacheDir();
  if (quant !== 'int4' || cacheDir === null) return null;
  const shards = new ShardBuilds({ modelDir, modelId, quant, cacheDir, int4Block: defaultInt4Block(), kvDtype: defaultKvDtype(), tieEmbeddings, log });
  // Not for a node that will not ask: one with the model on its disk (hearth up's local workers
  // build their own) or one already holding that range (a gateway restart). A stage asked for
  // later is built then (the route moves it to the front).
  const announced = new Map<string, AnnounceMsg>();
  bus.subscribe(subjects.announce(cluster, '*'), (m, subject) => {
    if (m.t !== 'announce' || !speaksForItself(subject, m.id)) return;
    announced.delete(m.id);
    announced.set(m.id, m);
    // Bounded: the oldest node ids go first (restarted workers come back under new ids).
    if (announced.size > 4096) announced.delete(announced.keys().next().value as string);
  });
  grants.onGrant((node, start, end) => {
    const a = announced.get(node);
    const holds = a?.holding !== undefined && a.holding.model === modelId && a.holding.start === start && a.holding.end === end;
    if (a?.hasModel === true || holds) return;
    shards.want(start, end);
  });
  return shards;
}

function startSpotChecker(pipeline: ClusterPipeline, bus: Bus, modelDir: string, cfg: GatewayOptions['cfg'], cost: ModelCost, log: Logger, metrics: ReturnType<typeof createMetrics>, contextLength: number): SpotChecker {
  const tol = Number(process.env['HEARTH_SPOT_CHECK_TOLERANCE'] ?? '');
  const spot = new SpotChecker({
    bus, cluster: cfg.cluster.name, gatewayId: pipeline.gatewayId, rate: cfg.cluster.spotCheckRate,
    coordinator: pipeline.coordinator, log,
    tolerance: Number.isFinite(tol) && tol > 0 ? tol : toleranceFor(cfg.model.quant),
    // One thread: the check competes with nothing on a gateway of its own, and little on a shared box.
    createEngine: async (start, end) => (await import('../runtime/index.ts')).createShardEngine(modelDir, { start, end, quant: cfg.model.quant, threads: 1, provider: 'cpu' }, { maxPositions: contextLength }),
    // The planner's figure for the stage's weights as built (its KV here is one short mirror).
    engineBytes: (start, end) => stageBytes({ ...cost, kvBytesPerLayer: 0 }, start, end),
    memoryBudget: cfg.cluster.spotCheckMemoryMb * 2 ** 20,
    onCheck: (e) => metrics.spotChecks.inc({ node: e.node, result: e.ok ? 'pass' : 'fail' }),
  });
  spot.start();
  pipeline.setVerifier(spot);
  return spot;
}
