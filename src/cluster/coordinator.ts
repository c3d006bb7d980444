// The gateway's view of the cluster: membership from announce/heartbeat/leave messages, the
// plan (an epoch) from the planner, assignments out, `loaded` reports in, and a snapshot for
// GET /v1/cluster. State lives in NATS messages only: a restarted gateway says `hello` and the
// workers announce themselves again.

import os from 'node:os';
import { HEARTBEAT_MS, NODE_TIMEOUT_MS, senderOf, subjects, type AnnounceMsg, type HeartbeatMsg, type LoadedMsg, type ModelRef, type PlanStage, type ProbeReplyMsg, type WireMessage } from '../bus/contract.ts';
import { SILENT_LOG, type Bus, type Log } from '../bus/types.ts';
import { wallMs } from '../bus/wall-clock.ts';
import type { Quant } from '../runtime/types.ts';
import { STAGE_OVERHEAD_MS, choosePlan, msPerMbOf, predictPlan, type IdleNode, type NodePerf, type PlanObjective, type PlanPrediction } from './plan-choice.ts';
import { heldLayout } from './held-layout.ts';
import { ServingMeter, summarize, type Figures } from './figures.ts';
import { movePays } from './move-pays.ts';
import { explainNoPlan, stageBytes, type ModelCost, type PlanNode } from './planner.ts';

export const MEMBER_STATES = ['joining', 'idle', 'loading', 'ready', 'failed', 'lost', 'distrusted'] as const;
export type MemberState = (typeof MEMBER_STATES)[number];

/** Longest a loaded plan waits for the gateway to warm it before switching anyway (issue 22). */
const WARM_LIMIT_MS = 60_000;

/** Per-node credentials (src/trust/authority.ts, issue 14): the bus grants each node exactly the
 *  subjects of its place in the plan. */
export interface NodeTrust {
  /** Grants the permissions of this plan; the plan goes live only once this resolves. */
  authorize(gateway: string, stages: readonly PlanStage[]): Promise<void>;
  /** The node left, was forgotten, or was dropped ('distrusted'): its credential stops working. */
  revoke(node: string, why: string): void;
  /** Whether this id holds a credential now: an announce from any other id (a phantom) is
   *  ignored even if it reached us (issue 19). Absent: every id the bus lets through counts. */
  isAdmitted?(node: string): boolean;
}

/** Per-node, per-range weights grants (src/weights/weights-grants.ts, issue 19): the assignment
 *  carries a grant that lets only this node fetch only its stage's tensors. */
export interface WeightsGrantIssuer {
  /** A grant for `node` to fetch layers [start, end); replaces the node's earlier grant. */
  grant(node: string, start: number, end: number): string;
  /** The node holds no stage (or left): its grant stops working. */
  revoke(node: string): void;
}

export interface CoordinatorOptions {
  readonly bus: Bus;
  readonly cluster: string;
  readonly gatewayId: string;
  readonly model: ModelRef;
  readonly cost: ModelCost;
  readonly quant: Quant;
  readonly log?: Log;
  /** A node silent this long is lost (default NODE_TIMEOUT_MS). */
  readonly nodeTimeoutMs?: number;
  /** Joins within this window make one plan, not one per worker (default 400 ms). */
  readonly settleMs?: number;
  /** Lost nodes stay visible in the snapshot this long (default 60 s). */
  readonly forgetLostMs?: number;
  /** Workers are on their way (`hearth up` started local ones): until one has joined, requests
   *  wait for them. false (default) = nobody is coming by themselves: with no worker ever joined,
   *  requests fail at once with the join hint. */
  readonly expectWorkers?: boolean;
  /** How a worker joins (the command line, token elided), for "no worker" messages. */
  readonly joinHint?: string;
  /** 'fastest' (default): the plan predicted to decode fastest, leaving slow or far nodes out;
   *  'balanced': every node that makes the slowest stage faster gets a share. */
  readonly objective?: PlanObjective;
  /** Per-node credentials; absent: one shared token, nothing to grant. */
  readonly trust?: NodeTrust;
  /** Per-node weights grants; absent: assignments carry model.weightsToken as given. */
  readonly weightsGrants?: WeightsGrantIssuer;
}

export interface LivePlan {
  readonly epoch: number;
  readonly stages: readonly PlanStage[];
  readonly live: boolean;
}

export interface NodeSnapshot {
  readonly id: string;
  readonly name: string;
  readonly state: MemberState;
  /** [start, end) layer range of its stage; null when the node holds none. */
  readonly range: readonly [number, number] | null;
  /** Bytes, all within what the node offered: free = offered − weights − KV. `total` = offered
   *  (kept for older readers); host* are the device's own figures, for context. */
  readonly memory: {
    readonly offered: number; readonly weights: number; readonly kvBytes: number; readonly free: number;
    readonly total: number; readonly hostFree: number; readonly hostTotal: number | null;
  };
  /** onnxruntime execution provider ('cpu' | 'cuda'; 'unknown' from older nodes). */
  readonly provider: string;
  readonly threads: number;
  readonly speed: number;
  readonly lastSeenMs: number;
  readonly tokS: number;
  /** Decode ms per layer (average layer of this model): measured on its stage, or estimated from
   *  its speed probe; and which. */
  readonly msPerLayer: number | null;
  readonly speedBasis: 'measured' | 'probe';
  /** Half its probe round trip over the bus (ms); null before the probe came back. */
  readonly linkMs: number | null;
  /** Why this node holds no stage (null when it holds one or is not a candidate). */
  readonly idleReason: string | null;
  /** For a node that holds no stage: what would make the cluster use it (issue 22 item 4). */
  readonly useWhen: string | null;
  /** Runs on the gateway's machine (its name is this host's name, or `hearth up`'s HOST-N). */
  readonly here: boolean;
  /** Why the node was dropped from the plan for bad work (a failed spot check), when it was. */
  readonly distrusted?: { readonly at: number; readonly reason: string };
}

/** What is predicted for the running plan, and what was measured on it: the figures of
 *  figures.ts (one place for the page, `status`, `doctor` and GET /v1/cluster). */
export interface PlanForecast extends Omit<Figures, 'predictedTokS' | 'predictedBasis'> {
  readonly objective: PlanObjective;
  /** Single-stream decode tok/s: from the serving plan's measured stage and hop times once it
   *  served a stream alone, else the planner's figure; and with the pipeline full (planner). */
  readonly predictedTokS: number;
  readonly predictedBasis: 'serving-steps' | 'planner';
  /** The figures in one sentence, as every surface shows them. */
  readonly summary: string;
  readonly predictedCapacityTokS: number;
  readonly hopsMs: number;
  /** Per stage: predicted ms per token, and the stage's measured single-step ms (null until it
   *  has served). */
  readonly stages: readonly { readonly node: string; readonly predictedMs: number; readonly measuredMs: number | null }[];
  readonly idle: readonly IdleNode[];
}

export interface ClusterSnapshot {
  readonly epoch: number;
  readonly model: string;
  readonly live: boolean;
  /** Why no plan can serve (HEARTH_ERR_NO_PLAN's text), when that is the case. */
  readonly error: string | null;
  readonly stages: readonly PlanStage[];
  readonly nodes: readonly NodeSnapshot[];
  /** The planner's prediction for the running plan (null without one). */
  readonly forecast: PlanForecast | null;
  /** The gateway's host name (the page marks the row of this machine). */
  readonly host: string;
}

interface Member {
  info: AnnounceMsg;
  state: MemberState;
  lastSeen: number;
  /** When a message from it last arrived (lastSeen is also reset on our own reconnect). */
  heardAt: number;
  kvBytes: number;
  weightBytes: number;
  freeMemory: number;
  tokS: number;
  /** Epoch the node last reported holding. */
  heldEpoch: number;
  /** When we last sent it an assignment (resend if it does not pick it up). */
  assignedAt: number;
  lostAt: number;
  /** Half the best probe round trip (ms), null before one came back. */
  legMs: number | null;
  /** Measured ms per MB of cost on its stage (from heartbeats), null before it served. */
  msPerMb: number | null;
  /** Its last measured single-step ms and the range it was measured on. */
  stepMs: number | null;
  stepRange: readonly [number, number] | null;
  distrusted?: { at: number; reason: string };
}

export type PlanListener = (plan: LivePlan | null, reason: string) => void;

interface Preparing {
  readonly epoch: number;
  readonly stages: PlanStage[];
  readonly prediction: PlanPrediction;
  readonly idle: readonly IdleNode[];
  /** Nodes of the new plan holding no stage of the serving one: they load before the switch. */
  readonly fresh: ReadonlySet<string>;
  readonly loaded: Set<string>;
  readonly reason: string;
}

export class Coordinator {
  private readonly bus: Bus;
  private readonly log: Log;
  private readonly opts: CoordinatorOptions;
  private readonly members = new Map<string, Member>();
  private current: { epoch: number; stages: PlanStage[]; live: boolean; loaded: Set<string>; prediction: PlanPrediction | null; idle: readonly IdleNode[]; authorized: boolean } | null = null;
  /** Link probes in flight: nonce → (node, sent at). */
  private readonly probes = new Map<number, { node: string; at: number }>();
  private nextNonce = 1;
  private epochNo = 0;
  private noPlan: string | null;
  /** Since when nothing can serve (Date.now()); null while a plan exists. */
  private noPlanAt: number | null = Date.now();
  private readonly listeners = new Set<PlanListener>();
  private readonly unsubs: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private settle: NodeJS.Timeout | null = null;
  private lastHello = 0;
  /** The bus is up; when it reconnects, stages must be heard from again before the plan serves. */
  private connected = true;
  private reconnectedAt = 0;
  private readonly droppedFrom = new Set<string>();
  /** Senders caught speaking in another's name → when that was last logged. */
  private readonly spoofLogged = new Map<string, number>();
  private everJoined = false;
  /** Tokens as the gateway saw them emitted (fed by the pipeline): the measured figures. */
  readonly meter = new ServingMeter();
  /** Make before break (issue 22): a plan adopted while another serves. Its nodes that hold no
   *  stage of the serving plan load it first, on its own (reserved) epoch; the switch comes once
   *  they have loaded, so the plan serving keeps serving meanwhile. */
  private preparing: Preparing | null = null;
  /** Highest epoch handed out (a prepared plan reserves one before it serves). */
  private reservedEpoch = 0;

  constructor(opts: CoordinatorOptions) {
    this.opts = opts;
    this.bus = opts.bus;
    this.log = opts.log ?? SILENT_LOG;
    this.noPlan = this.noWorkerText();
  }

  start(): void {
    const c = this.opts.cluster;
    const on = (subject: string): void => { this.unsubs.push(this.bus.subscribe(subject, (m, subj) => this.onMessage(m, subj))); };
    on(subjects.announce(c, '*'));
    on(subjects.heartbeat(c, '*'));
    on(subjects.leave(c, '*'));
    on(subjects.loaded(c, '*'));
    on(subjects.probeReply(c, this.opts.gatewayId, '*'));
    this.unsubs.push(this.bus.onStatus((st) => {
      if (st === 'disconnected') {
        this.connected = false;
      } else if (st === 'reconnected') {
        // Nobody could be heard while the server was away: restart every node's timeout, and
        // serve again only once each stage has spoken on the new connection (its subscriptions
        // are back then; nats.js re-subscribes before it sends anything else).
        this.connected = true;
        this.reconnectedAt = Date.now();
        for (const m of this.members.values()) if (m.state !== 'lost') m.lastSeen = this.reconnectedAt;
        this.hello();
      }
    }));
    this.hello();
    this.timer = setInterval(() => this.sweep(), Math.min(250, HEARTBEAT_MS / 2));
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.settle !== null) clearTimeout(this.settle);
    for (const u of this.unsubs) u();
    this.listeners.clear();
    // A warm-up that ends after this (its steps rejected by the closing pipeline) switches nothing.
    this.preparing = null;
    this.warmer = null;
  }

  epoch(): number {
    return this.epochNo;
  }

  plan(): LivePlan | null {
    const p = this.current;
    if (p === null) return null;
    return { epoch: p.epoch, stages: p.stages, live: p.live && this.reachable(p.stages) };
  }

  /** After a reconnect, every stage must have been heard from on the new connection. */
  private reachable(stages: readonly PlanStage[]): boolean {
    if (!this.connected) return false;
    if (this.reconnectedAt === 0) return true;
    return stages.every((s) => (this.members.get(s.node)?.heardAt ?? 0) > this.reconnectedAt);
  }

  /** The no-plan explanation when nothing can serve; null while a plan exists or is loading. */
  noPlanReason(): string | null {
    return this.noPlan;
  }

  /** How long nothing has been able to serve (ms), with no join pending; null otherwise. */
  noPlanForMs(): number | null {
    if (this.noPlan === null || this.noPlanAt === null || this.settle !== null) return null;
    // A gateway whose local workers are still starting is not failing: let requests wait. With
    // nobody on the way, waiting helps no one: say at once how a worker joins.
    if (this.epochNo === 0 && this.candidates().length === 0 && this.opts.expectWorkers === true && !this.everJoined) return null;
    return Date.now() - this.noPlanAt;
  }

  /** Known and not lost: messages from other ids are dropped by the gateway. */
  isMember(id: string): boolean {
    const m = this.members.get(id);
    return m !== undefined && m.state !== 'lost' && m.state !== 'distrusted';
  }

  /** Called on every epoch change (plan may be null: no plan) and when a plan goes live. */
  onPlan(listener: PlanListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): ClusterSnapshot {
    const now = Date.now();
    const rangeOf = new Map((this.current?.stages ?? []).map((s) => [s.node, [s.start, s.end] as const]));
    const cands = this.candidates();
    const speeds = msPerMbOf(cands, this.perf());
    const avgLayerMb = rangeCostMb({ ...this.opts.cost, headCost: 0 }, 0, this.opts.cost.numLayers) / Math.max(1, this.opts.cost.numLayers);
    const idleWhy = new Map((this.current?.idle ?? []).map((i) => [i.node, i.why]));
    const host = os.hostname();
    const nodes = [...this.members.values()]
      .sort((a, b) => (a.info.id < b.info.id ? -1 : 1))
      .map((m): NodeSnapshot => ({
        id: m.info.id,
        name: m.info.name,
        state: m.state,
        range: rangeOf.get(m.info.id) ?? null,
        memory: {
          offered: m.info.memory,
          weights: m.weightBytes,
          kvBytes: m.kvBytes,
          free: Math.max(0, m.info.memory - m.weightBytes - m.kvBytes),
          total: m.info.memory,
          hostFree: m.freeMemory,
          hostTotal: m.info.totalMemory ?? null,
        },
        provider: m.info.provider ?? 'unknown',
        threads: m.info.threads,
        speed: m.info.speed,
        lastSeenMs: now - m.lastSeen,
        tokS: m.tokS,
        msPerLayer: speeds.has(m.info.id) && Number.isFinite(speeds.get(m.info.id)?.ms) ? round3((speeds.get(m.info.id)?.ms ?? 0) * avgLayerMb) : null,
        speedBasis: m.msPerMb !== null ? 'measured' : 'probe',
        linkMs: m.legMs === null ? null : round3(m.legMs),
        idleReason: idleWhy.get(m.info.id) ?? null,
        useWhen: rangeOf.has(m.info.id) || m.state === 'lost' || m.state === 'distrusted' ? null : useWhen(idleWhy.get(m.info.id) ?? null, this.opts.objective ?? 'fastest'),
        here: m.info.name === host || m.info.name.startsWith(`${host}-`),
        ...(m.distrusted !== undefined ? { distrusted: { ...m.distrusted } } : {}),
      }));
    return { epoch: this.epochNo, model: this.opts.model.name, live: this.plan()?.live ?? false, error: this.noPlan, stages: this.current?.stages ?? [], nodes, forecast: this.forecast(), host };
  }

  /** The running plan's prediction next to what its stages measured since. */
  private forecast(): PlanForecast | null {
    const p = this.current;
    if (p === null || p.prediction === null) return null;
    const pred = p.prediction;
    const fig = this.meter.figures(p.epoch, { tokS: pred.tokS, cycleMs: pred.cycleMs });
    return {
      ...fig,
      summary: summarize(fig),
      objective: this.opts.objective ?? 'fastest',
      predictedTokS: fig.predictedTokS ?? round3(pred.tokS),
      predictedBasis: fig.predictedBasis ?? 'planner',
      predictedCapacityTokS: round3(pred.capacityTokS),
      hopsMs: round3(pred.hopsMs),
      stages: p.stages.map((s, i) => {
        const m = this.members.get(s.node);
        const measured = m !== undefined && m.stepMs !== null && m.stepRange !== null && m.stepRange[0] === s.start && m.stepRange[1] === s.end ? m.stepMs : null;
        return { node: s.node, predictedMs: round3(pred.stageMs[i] ?? 0), measuredMs: measured };
      }),
      idle: p.idle,
    };
  }

  /** What the planner knows of each node's speed and link. */
  private perf(): Map<string, NodePerf> {
    const out = new Map<string, NodePerf>();
    for (const m of this.members.values()) out.set(m.info.id, { msPerMb: m.msPerMb, legMs: m.legMs, probeMsPerMb: m.info.decodeMsPerMb ?? null });
    return out;
  }

  // --- messages ----------------------------------------------------------------------------

  private onMessage(m: WireMessage, subject: string): void {
    // A node speaks only for itself (issue 19): the server lets a credential publish only under
    // its own id, and a body naming another id than its subject is someone speaking in another's
    // name (or a gateway-side bug): dropped and logged, never acted on.
    const claimed = (m as { id?: unknown }).id;
    const sender = senderOf(subject);
    if (sender === null || claimed !== sender) {
      this.reportSpoof(sender ?? subject, typeof claimed === 'string' ? claimed : String(typeof claimed), m.t);
      return;
    }
    switch (m.t) {
      case 'announce': return this.onAnnounce(m);
      case 'heartbeat': return this.onHeartbeat(m);
      case 'leave': {
        const mem = this.members.get(m.id);
        if (mem === undefined || mem.state === 'lost') return;
        this.log.info({ node: m.id, name: mem.info.name }, 'worker left');
        this.markLost(mem, 'left');
        return;
      }
      case 'loaded': return this.onLoaded(m);
      case 'probe-reply': return this.onProbeReply(m);
      default: return;
    }
  }

  /** Logs a message sent in another node's name (at most once a second per sender). */
  private reportSpoof(sender: string, claimed: string, what: string): void {
    const now = Date.now();
    const last = this.spoofLogged.get(sender) ?? 0;
    if (now - last < 1000) return;
    if (this.spoofLogged.size > 1000) this.spoofLogged.clear();
    this.spoofLogged.set(sender, now);
    this.log.warn({ sender, claimed, what }, 'dropped a membership message sent in another node\'s name');
  }

  private onAnnounce(m: AnnounceMsg): void {
    // A phantom: an id that holds no credential (only reachable when the gateway's own side or a
    // shared-token server let it through) never becomes a member, so never enters a plan.
    if (this.opts.trust?.isAdmitted !== undefined && !this.opts.trust.isAdmitted(m.id)) {
      this.reportSpoof(m.id, m.id, 'announce without a credential');
      return;
    }
    const now = Date.now();
    const known = this.members.get(m.id);
    if (known !== undefined && known.state !== 'lost') {
      known.info = m;
      known.lastSeen = now;
      known.heardAt = now;
      return;
    }
    this.log.info({ node: m.id, name: m.name, memory: m.memory, threads: m.threads, speed: m.speed, provider: m.provider, rejoin: known !== undefined }, 'worker joined');
    this.everJoined = true;
    this.members.set(m.id, {
      info: m, state: 'joining', lastSeen: now, heardAt: now, kvBytes: 0, weightBytes: 0, freeMemory: m.freeMemory, tokS: 0, heldEpoch: -1, assignedAt: 0, lostAt: 0,
      legMs: known?.legMs ?? null, msPerMb: null, stepMs: null, stepRange: null,
    });
    this.probeLink(m.id);
    this.scheduleReplan(`join ${m.name}`);
  }

  /** Times the link to a node that joined: three small probes (the best round trip counts: the
   *  others met a busy moment), well inside the join's settle window. */
  private probeLink(node: string): void {
    for (let i = 0; i < 3; i++) {
      setTimeout(() => {
        const nonce = this.nextNonce++;
        this.probes.set(nonce, { node, at: wallMs() });
        if (this.probes.size > 1000) this.probes.delete(this.probes.keys().next().value as number);
        this.bus.publish(subjects.probe(this.opts.cluster, node), { t: 'probe', from: this.opts.gatewayId, nonce, pad: null, echo: false });
      }, i * 30).unref();
    }
  }

  private onProbeReply(m: ProbeReplyMsg): void {
    const p = this.probes.get(m.nonce);
    if (p === undefined || p.node !== m.id) return;
    this.probes.delete(m.nonce);
    const mem = this.members.get(m.id);
    if (mem === undefined) return;
    const leg = (wallMs() - p.at) / 2;
    mem.legMs = mem.legMs === null ? leg : Math.min(mem.legMs, leg);
  }

  private onHeartbeat(m: HeartbeatMsg): void {
    const mem = this.members.get(m.id);
    if (mem === undefined || mem.state === 'lost') {
      this.dropUnknown(m.id, 'heartbeat');
      return;
    }
    mem.lastSeen = Date.now();
    mem.heardAt = mem.lastSeen;
    mem.kvBytes = m.kvBytes;
    mem.weightBytes = m.weightBytes ?? 0;
    mem.freeMemory = m.freeMemory;
    mem.tokS = m.tokS;
    mem.heldEpoch = m.epoch;
    if (m.stepMs !== undefined && m.stepRange !== undefined) {
      const [a, b] = m.stepRange;
      const mb = rangeCostMb(this.opts.cost, a, b);
      mem.stepMs = m.stepMs;
      mem.stepRange = [a, b];
      if (mb > 0) mem.msPerMb = Math.max(1e-6, m.stepMs - STAGE_OVERHEAD_MS) / mb;
    }
    const p = this.current;
    // A node that missed its assignment (lost message, restart of its process under the same id)
    // is sent it again.
    const prepping = this.preparing !== null && this.preparing.fresh.has(m.id);
    if (p !== null && !prepping && m.epoch !== p.epoch && m.state !== 'loading' && mem.state !== 'failed' && mem.state !== 'distrusted' && Date.now() - mem.assignedAt > 2000) {
      this.assign(mem, p.epoch, p.stages);
    }
  }

  private onLoaded(m: LoadedMsg): void {
    const mem = this.members.get(m.id);
    if (mem === undefined || mem.state === 'lost') {
      this.dropUnknown(m.id, 'loaded');
      return;
    }
    if (mem.state === 'distrusted') return;
    const prep = this.preparing;
    if (prep !== null && m.epoch === prep.epoch && prep.fresh.has(m.id)) { this.onPrepared(prep, mem, m); return; }
    const p = this.current;
    if (p === null || m.epoch !== p.epoch) return; // stale
    mem.heldEpoch = m.epoch;
    if (!m.ok) {
      this.log.error({ node: m.id, name: mem.info.name, epoch: m.epoch, err: m.error }, 'worker failed to load its stage; planning without it');
      mem.state = 'failed';
      this.replan(`load failure on ${mem.info.name}`);
      return;
    }
    const inPlan = p.stages.some((s) => s.node === m.id);
    mem.state = inPlan ? 'ready' : 'idle';
    if (!inPlan) return;
    p.loaded.add(m.id);
    this.maybeLive(p);
  }

  /** Live once every stage has loaded and (with per-node credentials) the bus grants the plan's edges. */
  private maybeLive(p: NonNullable<Coordinator['current']>): void {
    if (!p.live && p.authorized && p.stages.every((s) => p.loaded.has(s.node))) {
      p.live = true;
      this.log.info({ epoch: p.epoch, stages: p.stages }, 'plan is live');
      this.publishPlan();
      this.emit('live');
    }
  }

  /** Drops a message from an id that is not a member, and asks workers to announce (a restarted
   *  gateway does not know the workers of its predecessor). */
  private dropUnknown(id: string, what: string): void {
    if (!this.droppedFrom.has(id)) {
      if (this.droppedFrom.size > 1000) this.droppedFrom.clear();
      this.droppedFrom.add(id);
      this.log.warn({ node: id, what }, 'dropped a message from an unknown node');
    }
    if (Date.now() - this.lastHello > 1000) this.hello();
  }

  private hello(): void {
    this.lastHello = Date.now();
    this.bus.publish(subjects.hello(this.opts.cluster), { t: 'hello', gateway: this.opts.gatewayId });
  }

  // --- liveness ----------------------------------------------------------------------------

  private sweep(): void {
    if (!this.connected) return; // silence is ours, not theirs
    const now = Date.now();
    const timeout = this.opts.nodeTimeoutMs ?? NODE_TIMEOUT_MS;
    const forget = this.opts.forgetLostMs ?? 60_000;
    for (const mem of this.members.values()) {
      if (mem.state === 'lost') {
        if (now - mem.lostAt > forget) {
          this.members.delete(mem.info.id);
          this.opts.trust?.revoke(mem.info.id, 'forgotten');
        }
      } else if (mem.state === 'distrusted') {
        continue; // stays on the page; its credential is gone already
      } else if (now - mem.lastSeen > timeout) {
        this.log.warn({ node: mem.info.id, name: mem.info.name, silentMs: now - mem.lastSeen }, 'worker lost (no heartbeat)');
        this.markLost(mem, 'heartbeat timeout');
      }
    }
  }

  /** Drops a node whose work failed a spot check: out of the plan (in-flight sequences replay on
   *  the new one), credential revoked, never planned again while this gateway runs. */
  distrust(id: string, reason: string): void {
    const mem = this.members.get(id);
    if (mem === undefined || mem.state === 'distrusted') return;
    this.log.error({ node: id, name: mem.info.name, reason }, 'node dropped: its work failed a spot check');
    mem.state = 'distrusted';
    mem.distrusted = { at: Date.now(), reason };
    this.opts.trust?.revoke(id, 'distrusted');
    this.opts.weightsGrants?.revoke(id);
    const p = this.current;
    if (p !== null && p.stages.some((s) => s.node === id)) this.replan(`distrusted ${mem.info.name}`);
  }

  private markLost(mem: Member, why: string): void {
    if (why === 'left') this.opts.trust?.revoke(mem.info.id, 'left');
    this.opts.weightsGrants?.revoke(mem.info.id);
    mem.state = 'lost';
    mem.lostAt = Date.now();
    const p = this.current;
    // Only a node holding a stage changes what can run; a lost idle node just leaves the list.
    if (p !== null && p.stages.some((s) => s.node === mem.info.id)) this.replan(`lost ${mem.info.name} (${why})`);
  }

  // --- planning ----------------------------------------------------------------------------

  private scheduleReplan(reason: string): void {
    if (this.settle !== null) return;
    this.settle = setTimeout(() => { this.settle = null; this.replan(reason); }, this.opts.settleMs ?? 400);
  }

  private candidates(): PlanNode[] {
    return [...this.members.values()]
      .filter((m) => m.state !== 'lost' && m.state !== 'failed' && m.state !== 'distrusted')
      .map((m) => ({ id: m.info.id, name: m.info.name, memory: m.info.memory, speed: m.info.speed }));
  }

  /** Makes a new plan now. Keeps the running plan when the new one is the same (a useless join
   *  must not disturb sequences in flight). */
  private replan(reason: string): void {
    if (this.settle !== null) { clearTimeout(this.settle); this.settle = null; }
    const nodes = this.candidates();
    const perf = this.perf();
    const cur = this.current;
    const choice = choosePlan(this.opts.cost, nodes, perf, { objective: this.opts.objective ?? 'fastest' });
    // With no plan serving (a gateway that just started), the layout the workers hold (held-layout.ts).
    const held = cur === null && choice !== null ? this.heldLayout(nodes) : null;
    const stages: PlanStage[] | null = held ?? (choice === null ? null : choice.plan.stages.map((s) => ({ node: s.node, start: s.start, end: s.end })));
    if (stages !== null && cur !== null && sameStages(stages, cur.stages)) {
      this.cancelPreparing('the plan serving is the one chosen again');
      // Same plan: refresh what is said about it, and make sure members outside it know they are idle.
      if (choice !== null) {
        cur.prediction = predictPlan(this.opts.cost, { stages: choice.plan.stages, bottleneck: choice.plan.bottleneck }, nodes, perf);
        cur.idle = choice.idle;
        for (const i of choice.idle) this.log.info({ node: i.node, predictedTokS: round3(cur.prediction.tokS), withTokS: i.withTokS === null ? null : round3(i.withTokS) }, i.why);
      }
      for (const mem of this.members.values()) {
        if ((mem.state === 'joining') && !stages.some((s) => s.node === mem.info.id)) this.assign(mem, cur.epoch, cur.stages);
      }
      return;
    }
    if (stages === null) {
      this.noPlan = nodes.length === 0 ? this.noWorkerText() : explainNoPlan(this.opts.cost, nodes);
      if (cur === null) { this.emit(reason); return; } // still no plan: nothing in flight to invalidate
      this.noPlanAt = Date.now();
      this.bumpEpoch();
      this.current = null;
      this.log.warn({ epoch: this.epochNo, reason, why: this.noPlan }, 'no plan can serve the model');
      this.emit(reason);
      return;
    }
    // Make before break (issue 22): while the plan serving is whole, a new one must pay for the
    // move (move-pays.ts), and its newcomers load before anything changes for the streams.
    // 'balanced' is the operator's choice to give every useful device a share: no margin there.
    if (cur !== null && cur.live && held === null && choice !== null && this.intact(cur.stages)) {
      if ((this.opts.objective ?? 'fastest') === 'fastest') {
        const verdict = this.movePays(cur, choice, nodes, perf);
        if (!verdict.adopt) {
          this.keepServing(cur, choice, verdict.why, verdict.candidate);
          return;
        }
        this.log.info({ epoch: cur.epoch, baseline: round3(verdict.baseline), candidate: round3(verdict.candidate), basis: verdict.basis, metric: verdict.metric }, verdict.why);
      }
      if (stages.some((s) => !cur.stages.some((c) => c.node === s.node))) {
        this.prepare(stages, choice, reason);
        return;
      }
    }
    this.bumpEpoch();
    this.noPlan = null;
    this.noPlanAt = null;
    const prediction = held !== null
      ? predictPlan(this.opts.cost, { stages: held.map((h) => ({ ...h, bytes: stageBytes(this.opts.cost, h.start, h.end), time: 0 })), bottleneck: 0 }, nodes, perf)
      : choice?.prediction ?? null;
    const idle = held !== null ? [] : choice?.idle ?? [];
    const next: NonNullable<Coordinator['current']> = { epoch: this.epochNo, stages, live: false, loaded: new Set(), prediction, idle, authorized: this.opts.trust === undefined };
    this.current = next;
    // Per-node credentials: the bus grants this plan's edges before the plan serves.
    this.opts.trust?.authorize(this.opts.gatewayId, stages).then(() => {
      next.authorized = true;
      if (this.current === next) this.maybeLive(next);
    }, (e: unknown) => this.log.error({ epoch: next.epoch, err: (e as Error).message }, 'the bus did not take the permissions of the new plan; it cannot serve'));
    const predictedTokS = prediction === null ? null : round3(prediction.tokS);
    this.log.info({ epoch: this.epochNo, reason, stages, predictedTokS, predictedCapacityTokS: prediction === null ? null : round3(prediction.capacityTokS), basis: choice?.basis },
      `new plan: ${stages.length} stage(s), predicts ${predictedTokS?.toFixed(1) ?? '?'} tok/s for one stream`);
    for (const i of idle) this.log.info({ node: i.node, predictedTokS, withTokS: i.withTokS === null ? null : round3(i.withTokS) }, i.why);
    for (const mem of this.members.values()) {
      if (mem.state === 'lost' || mem.state === 'failed' || mem.state === 'distrusted') continue;
      this.assign(mem, this.epochNo, stages);
    }
    this.publishPlan();
    this.emit(reason);
  }

  /** A new epoch: past any a prepared plan reserved, and that preparation is dropped. */
  private bumpEpoch(): void {
    this.cancelPreparing('a new plan replaced it');
    this.epochNo = Math.max(this.epochNo, this.reservedEpoch) + 1;
    this.reservedEpoch = this.epochNo;
  }

  /** Every stage's node is still with us and loaded: the plan can keep serving. */
  private intact(stages: readonly PlanStage[]): boolean {
    return stages.every((s) => { const m = this.members.get(s.node); return m !== undefined && (m.state === 'ready' || m.state === 'loading'); });
  }

  private movePays(cur: NonNullable<Coordinator['current']>, choice: NonNullable<ReturnType<typeof choosePlan>>, nodes: readonly PlanNode[], perf: ReadonlyMap<string, NodePerf>): ReturnType<typeof movePays> {
    const servingNow = predictPlan(this.opts.cost, { stages: cur.stages.map((s) => ({ ...s, bytes: stageBytes(this.opts.cost, s.start, s.end), time: 0 })), bottleneck: 0 }, nodes, perf);
    const planned = cur.prediction ?? servingNow;
    const fig = this.meter.figures(cur.epoch, { tokS: planned.tokS, cycleMs: planned.cycleMs });
    return movePays(this.opts.objective ?? 'fastest', servingNow, fig, choice.prediction);
  }

  /** The move does not pay: the plan serving stays; members outside it are told they are idle,
   *  and why (the page says what would make the cluster use them). */
  private keepServing(cur: NonNullable<Coordinator['current']>, choice: NonNullable<ReturnType<typeof choosePlan>>, why: string, candidateTokS: number): void {
    this.cancelPreparing('the plan serving stays');
    const inPlan = new Set(cur.stages.map((s) => s.node));
    const chosen = new Set(choice.plan.stages.map((s) => s.node));
    const idle: IdleNode[] = [];
    for (const mem of this.members.values()) {
      if (inPlan.has(mem.info.id) || mem.state === 'lost' || mem.state === 'failed' || mem.state === 'distrusted') continue;
      const earlier = choice.idle.find((i) => i.node === mem.info.id);
      idle.push(chosen.has(mem.info.id) || earlier === undefined
        ? { node: mem.info.id, name: mem.info.name, why: `node ${mem.info.name} left out: ${why}`, withTokS: chosen.has(mem.info.id) ? round3(candidateTokS) : null }
        : earlier);
      if (mem.state === 'joining') this.assign(mem, cur.epoch, cur.stages);
    }
    cur.idle = idle;
    this.log.info({ epoch: cur.epoch, idle: idle.map((i) => i.node) }, why);
  }

  /** Newcomers of an adopted plan load it on a reserved epoch while the old plan serves. */
  private prepare(stages: PlanStage[], choice: NonNullable<ReturnType<typeof choosePlan>>, reason: string): void {
    const cur = this.current;
    if (cur === null) return;
    if (this.preparing !== null && sameStages(this.preparing.stages, stages)) return;
    this.cancelPreparing('a different plan was chosen');
    const epoch = Math.max(this.epochNo, this.reservedEpoch) + 1;
    this.reservedEpoch = epoch;
    const fresh = new Set(stages.filter((s) => !cur.stages.some((c) => c.node === s.node)).map((s) => s.node));
    this.preparing = { epoch, stages, prediction: choice.prediction, idle: choice.idle, fresh, loaded: new Set(), reason };
    this.log.info({ servingEpoch: cur.epoch, epoch, stages, loading: [...fresh] }, 'loading a new plan while the plan serving keeps serving');
    for (const id of fresh) {
      const mem = this.members.get(id);
      if (mem !== undefined) this.assign(mem, epoch, stages);
    }
  }

  private onPrepared(prep: Preparing, mem: Member, m: LoadedMsg): void {
    mem.heldEpoch = m.epoch;
    if (!m.ok) {
      this.log.error({ node: m.id, name: mem.info.name, epoch: m.epoch, err: m.error }, 'worker failed to load the next plan\'s stage; planning without it');
      mem.state = 'failed';
      this.replan(`load failure on ${mem.info.name}`);
      return;
    }
    prep.loaded.add(m.id);
    if ([...prep.fresh].every((id) => prep.loaded.has(id))) this.warmThenSwitch(prep);
  }

  /** The gateway's warmer (cluster-pipeline.ts): replays its streams' contexts into the loaded
   *  plan's KV while the old plan serves, so a stream moves at a token boundary with a short
   *  catch-up instead of replaying its whole context (issue 22). null: switch at once. */
  private warmer: ((epoch: number, stages: readonly PlanStage[]) => Promise<void>) | null = null;

  setWarmer(fn: ((epoch: number, stages: readonly PlanStage[]) => Promise<void>) | null): void {
    this.warmer = fn;
  }

  /** Only a plan whose every stage is a newcomer takes steps on its own epoch before the switch
   *  (a node of the serving plan serves that plan's epoch until then): only that one is warmed.
   *  The switch waits for the warm at most WARM_LIMIT_MS; a failed warm switches too (replay).
   *  With per-node credentials the bus grants the new plan's edges only at the switch: no warm. */
  private warmThenSwitch(prep: Preparing): void {
    const warm = this.warmer;
    if (warm === null || this.opts.trust !== undefined || !prep.stages.every((s) => prep.fresh.has(s.node))) { this.switchTo(prep); return; }
    let done = false;
    const go = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (this.preparing === prep) this.switchTo(prep);
    };
    const timer = setTimeout(go, WARM_LIMIT_MS);
    this.log.info({ epoch: prep.epoch }, 'the new plan has loaded: warming it with the streams in flight before the switch');
    warm(prep.epoch, prep.stages).then(go, (e: unknown) => {
      this.log.warn({ epoch: prep.epoch, err: (e as Error).message }, 'warming the new plan failed: switching, streams replay');
      go();
    });
  }

  /** The newcomers hold their layers: the new plan becomes the plan (streams move at their next
   *  token; nodes whose range is unchanged keep their engines). */
  private switchTo(prep: Preparing): void {
    this.preparing = null;
    this.epochNo = prep.epoch;
    this.noPlan = null;
    this.noPlanAt = null;
    const next: NonNullable<Coordinator['current']> = { epoch: prep.epoch, stages: prep.stages, live: false, loaded: new Set(prep.loaded), prediction: prep.prediction, idle: prep.idle, authorized: this.opts.trust === undefined };
    // The newcomers hold their stage of this epoch already (they said `loaded`): they serve.
    for (const id of prep.loaded) { const m = this.members.get(id); if (m !== undefined && m.state === 'loading') m.state = 'ready'; }
    this.current = next;
    this.opts.trust?.authorize(this.opts.gatewayId, prep.stages).then(() => {
      next.authorized = true;
      if (this.current === next) this.maybeLive(next);
    }, (e: unknown) => this.log.error({ epoch: next.epoch, err: (e as Error).message }, 'the bus did not take the permissions of the new plan; it cannot serve'));
    const predictedTokS = round3(prep.prediction.tokS);
    this.log.info({ epoch: next.epoch, reason: prep.reason, stages: prep.stages, predictedTokS }, `new plan: ${prep.stages.length} stage(s), its new nodes loaded while the old plan served; predicts ${predictedTokS.toFixed(1)} tok/s for one stream`);
    for (const i of prep.idle) this.log.info({ node: i.node, predictedTokS, withTokS: i.withTokS === null ? null : round3(i.withTokS) }, i.why);
    for (const mem of this.members.values()) {
      if (mem.state === 'lost' || mem.state === 'failed' || mem.state === 'distrusted' || prep.fresh.has(mem.info.id)) continue;
      this.assign(mem, next.epoch, prep.stages);
    }
    this.publishPlan();
    this.emit(prep.reason);
    this.maybeLive(next);
  }

  /** Drops a preparation; its newcomers go back to idle on the plan serving. */
  private cancelPreparing(why: string): void {
    const prep = this.preparing;
    if (prep === null) return;
    this.preparing = null;
    this.log.info({ epoch: prep.epoch, why }, 'dropped the plan that was loading');
    const cur = this.current;
    for (const id of prep.fresh) {
      const mem = this.members.get(id);
      if (mem === undefined || mem.state === 'lost' || mem.state === 'failed' || mem.state === 'distrusted') continue;
      if (cur !== null && !cur.stages.some((s) => s.node === id)) this.assign(mem, cur.epoch, cur.stages);
    }
  }

  /** The stages the candidates hold now, when they tile the model in order and each fits. */
  private heldLayout(nodes: readonly PlanNode[]): PlanStage[] | null {
    const holdings = nodes.flatMap((n) => { const h = this.members.get(n.id)?.info.holding; return h === undefined ? [] : [{ node: n.id, ...h }]; });
    const held = heldLayout(this.opts.cost, this.opts.model.name, nodes, holdings);
    if (held !== null) this.log.info({ stages: held }, 'adopting the layout the workers already hold');
    return held;
  }

  /** No candidate at all: whether one ever joined, and how one joins (names no departed node). */
  private noWorkerText(): string {
    const how = this.opts.joinHint !== undefined ? `start one: ${this.opts.joinHint}` : 'start one with `hearth worker --join nats://HOST:PORT`';
    return `${this.everJoined ? 'no worker is connected now (every worker has left or was lost)' : 'no worker has joined yet'}; ${how}`;
  }

  private assign(mem: Member, epoch: number, stages: readonly PlanStage[]): void {
    const idx = stages.findIndex((s) => s.node === mem.info.id);
    const stage = stages[idx];
    mem.assignedAt = Date.now();
    if (stage !== undefined) mem.state = 'loading';
    // A node that served and now holds nothing is idle from here on (it unloads; its `loaded`
    // reply only confirms): a plan that goes live at once (make before break) must not show it
    // as still serving.
    else if (mem.state === 'ready') mem.state = 'idle';
    // The weights grant travels on the node's own assign subject (only its credential reads it)
    // and covers only its stage's layers (issue 19).
    const g = this.opts.weightsGrants;
    if (g !== undefined && stage === undefined) g.revoke(mem.info.id);
    const model = g === undefined || stage === undefined ? this.opts.model : { ...this.opts.model, weightsToken: g.grant(mem.info.id, stage.start, stage.end) };
    this.bus.publish(subjects.assign(this.opts.cluster, mem.info.id), {
      t: 'assign',
      epoch,
      gateway: this.opts.gatewayId,
      model,
      range: stage === undefined ? null : { start: stage.start, end: stage.end },
      next: stages[idx + 1]?.node ?? null,
      first: stages[0]?.node ?? null,
      stages: stages.length,
      quant: this.opts.quant,
      threads: mem.info.threads,
      // What the offer leaves for KV once the stage's weights are counted as the planner counts
      // them, so the node's runtime bound and the plan agree.
      ...(stage === undefined ? {} : { kvBytes: Math.max(0, Math.floor(mem.info.memory - (stageBytes(this.opts.cost, stage.start, stage.end) - (stage.end - stage.start) * this.opts.cost.kvBytesPerLayer))) }),
    });
  }

  private publishPlan(): void {
    const p = this.current;
    if (p === null) return;
    this.bus.publish(subjects.plan(this.opts.cluster), { t: 'plan', epoch: p.epoch, model: this.opts.model.name, stages: p.stages, live: p.live });
  }

  private emit(reason: string): void {
    const p = this.plan();
    for (const l of this.listeners) l(p, reason);
  }
}

/** What would make the cluster use an idle node, from why it is idle. */
function useWhen(why: string | null, objective: PlanObjective): string {
  if (why === null) return 'it is used once the next plan is made (it has just joined, or no plan serves yet)';
  if (/fits in memory|smallest stage needs/.test(why)) return 'give it more memory (hearth worker --memory), or serve a model whose layers fit in what it offers';
  if (/reports no speed/.test(why)) return 'restart it so that its speed probe runs (or pass --speed)';
  if (/was dropped|distrusted/.test(why)) return 'nothing while this gateway runs: its work failed a spot check';
  if (objective === 'balanced') return 'a split with it must make the slowest stage faster: a bigger model, or more speed or memory here';
  const balanced = '; or start the gateway with cluster.plan "balanced" to give every device that adds capacity a share (more streams at once, one stream a little slower)';
  return `a plan with it must be predicted at least 15% faster than the plan serving: a model too big for the devices serving now, a device serving now that is slower or farther than this one, or more threads here${balanced}`;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** MB of weights a stage streams per token (its layers, plus the head on the last stage). */
function rangeCostMb(model: ModelCost, start: number, end: number): number {
  let c = 0;
  for (let i = start; i < end; i++) c += model.layerBytes[i] ?? 0;
  if (end === model.numLayers) c += model.headCost;
  return c / 1e6;
}

function sameStages(a: readonly PlanStage[], b: readonly PlanStage[]): boolean {
  return a.length === b.length && a.every((s, i) => s.node === b[i]?.node && s.start === b[i]?.start && s.end === b[i]?.end);
}
