// The gateway's side of node trust: admits nodes that present the join token (each gets an nkey
// user of its own, with the permissions of src/trust/permissions.ts), re-grants permissions
// whenever the plan changes (the plan serves only once the server has them), and revokes a
// node's credential when it leaves, is forgotten, or is dropped for failing a spot check.
// The user list lives in the nats-server's config; every change is one reload (SIGHUP).
// A join token holder must not be able to fill that list (issue 19): admissions are rate-limited
// (a token bucket), and a credential whose node does not announce itself within a few seconds of
// its admission is revoked again.

import { isValidId, speaksForItself, subjects, type JoinMsg, type PlanStage, type WireMessage } from '../bus/contract.ts';
import { isUserNkey } from '../bus/index.ts';
import { SILENT_LOG, type Bus, type Log } from '../bus/types.ts';
import type { NodeTrust } from '../cluster/coordinator.ts';
import type { NatsUser } from '../cluster/nats-server.ts';
import { serverUsers, type TrustedNode } from './permissions.ts';

export interface TrustAuthorityOptions {
  readonly bus: Bus;
  readonly cluster: string;
  /** The running server: its users are replaced (and reloaded) on every change. */
  readonly server: { setUsers(users: readonly NatsUser[]): Promise<void> };
  readonly gatewayPassword: string;
  /** The cluster token: the join user's password. */
  readonly joinPassword: string;
  readonly log?: Log;
  /** At most this many admitted nodes (a flood of joins cannot grow the config without bound). */
  readonly maxNodes?: number;
  /** Admissions per second, sustained (default 2), and the burst allowed above it (default 5). */
  readonly joinRatePerSec?: number;
  readonly joinBurst?: number;
  /** A node admitted that has not announced itself within this loses its credential (default 5 s). */
  readonly announceWithinMs?: number;
}

export const DEFAULT_JOIN_RATE_PER_SEC = 2;
export const DEFAULT_JOIN_BURST = 5;
export const DEFAULT_ANNOUNCE_WITHIN_MS = 5000;

export class TrustAuthority implements NodeTrust {
  private readonly o: TrustAuthorityOptions;
  private readonly log: Log;
  private readonly nodes = new Map<string, TrustedNode>();
  /** Node ids and keys dropped for bad work: they are not admitted again. */
  private readonly banned = new Set<string>();
  private gateway: string | null = null;
  private stages: readonly PlanStage[] = [];
  private readonly unsubs: (() => void)[] = [];
  /** Admitted nodes not yet heard announcing → when they were admitted. */
  private readonly pending = new Map<string, number>();
  /** Token bucket of admissions (tokens, refilled at joinRatePerSec up to joinBurst). */
  private bucket: number;
  private bucketAt = Date.now();
  /** Join requests dropped by the rate limit since the last time that was logged. */
  private dropped = 0;
  private droppedLoggedAt = 0;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(o: TrustAuthorityOptions) {
    this.o = o;
    this.log = o.log ?? SILENT_LOG;
    this.bucket = o.joinBurst ?? DEFAULT_JOIN_BURST;
  }

  /** The users a fresh server starts with: the gateway and the join user. */
  static initialUsers(cluster: string, gatewayPassword: string, joinPassword: string): NatsUser[] {
    return serverUsers({ cluster, gatewayPassword, joinPassword, nodes: [], gateway: null, stages: [] });
  }

  start(): void {
    this.unsubs.push(this.o.bus.subscribe(subjects.join(this.o.cluster), (m) => { void this.onJoin(m); }));
    // An announce can only come from the credential of the id its subject names (permissions.ts).
    this.unsubs.push(this.o.bus.subscribe(subjects.announce(this.o.cluster, '*'), (m, subj) => {
      if (m.t === 'announce' && speaksForItself(subj, m.id)) this.pending.delete(m.id);
    }));
    const within = this.o.announceWithinMs ?? DEFAULT_ANNOUNCE_WITHIN_MS;
    this.sweeper = setInterval(() => this.sweep(within), Math.max(100, Math.min(1000, within / 4)));
    this.sweeper.unref();
  }

  close(): void {
    for (const u of this.unsubs) u();
    if (this.sweeper !== null) clearInterval(this.sweeper);
  }

  /** Ids holding a credential now. */
  admitted(): string[] {
    return [...this.nodes.keys()];
  }

  isAdmitted(id: string): boolean {
    return this.nodes.has(id);
  }

  /** Revokes, in one reload, every credential whose node has not announced in time. */
  private sweep(within: number): void {
    const now = Date.now();
    const late = [...this.pending].filter(([, at]) => now - at > within).map(([id]) => id);
    if (late.length === 0) return;
    for (const id of late) {
      this.pending.delete(id);
      this.nodes.delete(id);
    }
    this.log.warn({ nodes: late.slice(0, 20), count: late.length, withinMs: within }, `credential revoked: ${late.length} admitted node(s) did not announce within ${within} ms`);
    this.apply().catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'revoking credentials failed'));
  }

  /** Takes one admission from the token bucket; false when the rate limit is reached. */
  private takeAdmission(): boolean {
    const rate = this.o.joinRatePerSec ?? DEFAULT_JOIN_RATE_PER_SEC;
    const burst = this.o.joinBurst ?? DEFAULT_JOIN_BURST;
    const now = Date.now();
    this.bucket = Math.min(burst, this.bucket + ((now - this.bucketAt) / 1000) * rate);
    this.bucketAt = now;
    if (this.bucket < 1) {
      this.dropped++;
      if (now - this.droppedLoggedAt >= 5000) {
        this.log.warn({ dropped: this.dropped, ratePerSec: rate, burst },
          `join rate limit reached (${rate}/s, burst ${burst}): dropped ${this.dropped} join request(s); a real worker keeps asking and gets in once the flood stops`);
        this.dropped = 0;
        this.droppedLoggedAt = now;
      }
      return false;
    }
    this.bucket -= 1;
    return true;
  }

  authorize(gateway: string, stages: readonly PlanStage[]): Promise<void> {
    this.gateway = gateway;
    this.stages = stages;
    return this.apply();
  }

  revoke(id: string, why: string): void {
    if (why === 'distrusted') {
      this.banned.add(id);
      const key = this.nodes.get(id)?.nkey;
      if (key !== undefined) this.banned.add(key);
    }
    this.pending.delete(id);
    if (!this.nodes.delete(id)) return;
    this.log.warn({ node: id, why }, 'credential revoked');
    this.apply().catch((e: unknown) => this.log.error({ node: id, err: (e as Error).message }, 'revoking a credential failed'));
  }

  private async onJoin(m: WireMessage): Promise<void> {
    if (m.t !== 'join') return;
    const refuse = (why: string): void => {
      this.log.warn({ node: m.id, name: m.name, why }, 'join refused');
      if (isValidId(m.id)) this.o.bus.publish(subjects.joined(this.o.cluster, m.id), { t: 'joined', id: m.id, ok: false, error: why });
    };
    if (!isValidId(m.id)) return refuse('invalid node id');
    if (!isUserNkey(m.nkey)) return refuse('invalid nkey');
    // A distrusted node asks again at once (its bus renews a refused credential, src/trust/join.ts):
    // it is told no, and the worker ends. The list lives in this process: a restarted gateway
    // forgets it (docs/operator.md), as it forgets every credential.
    if (this.banned.has(m.id) || this.banned.has(m.nkey)) return refuse('distrusted: this node was dropped for failing a spot check of its work, and is not admitted again while this gateway runs');
    const known = this.nodes.get(m.id);
    if (known !== undefined && known.nkey !== m.nkey) return refuse(`node id ${m.id} is taken`);
    // Rate limit (issue 19): dropped without an answer, so a real worker (which asks again every
    // 2 s) is not turned away for good by someone else's flood. A re-sent request of a node
    // already admitted costs nothing and is answered again.
    if (known === undefined && !this.takeAdmission()) return;
    if (known === undefined && this.nodes.size >= (this.o.maxNodes ?? 256)) return refuse('too many nodes');
    if (known === undefined) {
      this.nodes.set(m.id, { id: m.id, nkey: m.nkey });
      this.pending.set(m.id, Date.now());
    }
    try {
      await this.apply();
    } catch (e) {
      this.nodes.delete(m.id);
      this.pending.delete(m.id);
      return refuse(`the server did not take the credential: ${(e as Error).message}`);
    }
    this.log.info({ node: m.id, name: (m as JoinMsg).name }, 'node admitted with its own credential');
    this.o.bus.publish(subjects.joined(this.o.cluster, m.id), { t: 'joined', id: m.id, ok: true, error: null });
  }

  private apply(): Promise<void> {
    return this.o.server.setUsers(serverUsers({
      cluster: this.o.cluster, gatewayPassword: this.o.gatewayPassword, joinPassword: this.o.joinPassword,
      nodes: [...this.nodes.values()], gateway: this.gateway, stages: this.stages,
    }));
  }
}
