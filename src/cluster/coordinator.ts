// The gateway's view of the cluster: membership from announce/heartbeat/leave messages, the
// plan (an epoch) from the planner, assignments out, `loaded` reports in, and a snapshot for
// GET /v1/cluster. State lives in NATS messages only: a restarted gateway says `hello` and the
// workers announce themselves again.

import { HEARTBEAT_MS, NODE_TIMEOUT_MS, subjects, type AnnounceMsg, type HeartbeatMsg, type LoadedMsg, type ModelRef, type PlanStage, type WireMessage } from '../bus/contract.ts';
import { SILENT_LOG, type Bus, type Log } from '../bus/types.ts';
import type { Quant } from '../runtime/types.ts';
import { explainNoPlan, tryPlan, type ModelCost, type PlanNode } from './planner.ts';

export const MEMBER_STATES = ['joining', 'idle', 'loading', 'ready', 'failed', 'lost'] as const;
export type MemberState = (typeof MEMBER_STATES)[number];

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
}

export interface ClusterSnapshot {
  readonly epoch: number;
  readonly model: string;
  readonly live: boolean;
  /** Why no plan can serve (HEARTH_ERR_NO_PLAN's text), when that is the case. */
  readonly error: string | null;
  readonly stages: readonly PlanStage[];
  readonly nodes: readonly NodeSnapshot[];
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
}

export type PlanListener = (plan: LivePlan | null, reason: string) => void;

export class Coordinator {
  private readonly bus: Bus;
  private readonly log: Log;
  private readonly opts: CoordinatorOptions;
  private readonly members = new Map<string, Member>();
  private current: { epoch: number; stages: PlanStage[]; live: boolean; loaded: Set<string> } | null = null;
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
  private everJoined = false;

  constructor(opts: CoordinatorOptions) {
    this.opts = opts;
    this.bus = opts.bus;
    this.log = opts.log ?? SILENT_LOG;
    this.noPlan = this.noWorkerText();
  }

  start(): void {
    const c = this.opts.cluster;
    const on = (subject: string): void => { this.unsubs.push(this.bus.subscribe(subject, (m) => this.onMessage(m))); };
    on(subjects.announce(c));
    on(subjects.heartbeat(c));
    on(subjects.leave(c));
    on(subjects.loaded(c));
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
    return m !== undefined && m.state !== 'lost';
  }

  /** Called on every epoch change (plan may be null: no plan) and when a plan goes live. */
  onPlan(listener: PlanListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): ClusterSnapshot {
    const now = Date.now();
    const rangeOf = new Map((this.current?.stages ?? []).map((s) => [s.node, [s.start, s.end] as const]));
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
      }));
    return { epoch: this.epochNo, model: this.opts.model.name, live: this.plan()?.live ?? false, error: this.noPlan, stages: this.current?.stages ?? [], nodes };
  }

  // --- messages ----------------------------------------------------------------------------

  private onMessage(m: WireMessage): void {
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
      default: return;
    }
  }

  private onAnnounce(m: AnnounceMsg): void {
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
    this.members.set(m.id, { info: m, state: 'joining', lastSeen: now, heardAt: now, kvBytes: 0, weightBytes: 0, freeMemory: m.freeMemory, tokS: 0, heldEpoch: -1, assignedAt: 0, lostAt: 0 });
    this.scheduleReplan(`join ${m.name}`);
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
    const p = this.current;
    // A node that missed its assignment (lost message, restart of its process under the same id)
    // is sent it again.
    if (p !== null && m.epoch !== p.epoch && m.state !== 'loading' && mem.state !== 'failed' && Date.now() - mem.assignedAt > 2000) {
      this.assign(mem, p.epoch, p.stages);
    }
  }

  private onLoaded(m: LoadedMsg): void {
    const mem = this.members.get(m.id);
    if (mem === undefined || mem.state === 'lost') {
      this.dropUnknown(m.id, 'loaded');
      return;
    }
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
    if (!p.live && p.stages.every((s) => p.loaded.has(s.node))) {
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
        if (now - mem.lostAt > forget) this.members.delete(mem.info.id);
      } else if (now - mem.lastSeen > timeout) {
        this.log.warn({ node: mem.info.id, name: mem.info.name, silentMs: now - mem.lastSeen }, 'worker lost (no heartbeat)');
        this.markLost(mem, 'heartbeat timeout');
      }
    }
  }

  private markLost(mem: Member, why: string): void {
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
      .filter((m) => m.state !== 'lost' && m.state !== 'failed')
      .map((m) => ({ id: m.info.id, name: m.info.name, memory: m.info.memory, speed: m.info.speed }));
  }

  /** Makes a new plan now. Keeps the running plan when the new one is the same (a useless join
   *  must not disturb sequences in flight). */
  private replan(reason: string): void {
    if (this.settle !== null) { clearTimeout(this.settle); this.settle = null; }
    const nodes = this.candidates();
    const result = tryPlan(this.opts.cost, nodes);
    const stages: PlanStage[] | null = result === null ? null : result.stages.map((s) => ({ node: s.node, start: s.start, end: s.end }));
    const cur = this.current;
    if (stages !== null && cur !== null && sameStages(stages, cur.stages)) {
      // Same plan: just make sure members outside it know they are idle.
      for (const mem of this.members.values()) {
        if ((mem.state === 'joining') && !stages.some((s) => s.node === mem.info.id)) this.assign(mem, cur.epoch, cur.stages);
      }
      return;
    }
    if (stages === null) {
      this.noPlan = nodes.length === 0 ? this.noWorkerText() : explainNoPlan(this.opts.cost, nodes);
      if (cur === null) { this.emit(reason); return; } // still no plan: nothing in flight to invalidate
      this.noPlanAt = Date.now();
      this.epochNo++;
      this.current = null;
      this.log.warn({ epoch: this.epochNo, reason, why: this.noPlan }, 'no plan can serve the model');
      this.emit(reason);
      return;
    }
    this.epochNo++;
    this.noPlan = null;
    this.noPlanAt = null;
    this.current = { epoch: this.epochNo, stages, live: false, loaded: new Set() };
    this.log.info({ epoch: this.epochNo, reason, stages }, 'new plan');
    for (const mem of this.members.values()) {
      if (mem.state === 'lost' || mem.state === 'failed') continue;
      this.assign(mem, this.epochNo, stages);
    }
    this.publishPlan();
    this.emit(reason);
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
    this.bus.publish(subjects.assign(this.opts.cluster, mem.info.id), {
      t: 'assign',
      epoch,
      gateway: this.opts.gatewayId,
      model: this.opts.model,
      range: stage === undefined ? null : { start: stage.start, end: stage.end },
      next: stages[idx + 1]?.node ?? null,
      first: stages[0]?.node ?? null,
      quant: this.opts.quant,
      threads: mem.info.threads,
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

function sameStages(a: readonly PlanStage[], b: readonly PlanStage[]): boolean {
  return a.length === b.length && a.every((s, i) => s.node === b[i]?.node && s.start === b[i]?.start && s.end === b[i]?.end);
}
