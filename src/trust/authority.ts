// The gateway's side of node trust: admits nodes that present the join token (each gets an nkey
// user of its own, with the permissions of src/trust/permissions.ts), re-grants permissions
// whenever the plan changes (the plan serves only once the server has them), and revokes a
// node's credential when it leaves, is forgotten, or is dropped for failing a spot check.
// The user list lives in the nats-server's config; every change is one reload (SIGHUP).

import { isValidId, subjects, type JoinMsg, type PlanStage, type WireMessage } from '../bus/contract.ts';
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
}

export class TrustAuthority implements NodeTrust {
  private readonly o: TrustAuthorityOptions;
  private readonly log: Log;
  private readonly nodes = new Map<string, TrustedNode>();
  /** Node ids and keys dropped for bad work: they are not admitted again. */
  private readonly banned = new Set<string>();
  private gateway: string | null = null;
  private stages: readonly PlanStage[] = [];
  private unsub: (() => void) | null = null;

  constructor(o: TrustAuthorityOptions) {
    this.o = o;
    this.log = o.log ?? SILENT_LOG;
  }

  /** The users a fresh server starts with: the gateway and the join user. */
  static initialUsers(cluster: string, gatewayPassword: string, joinPassword: string): NatsUser[] {
    return serverUsers({ cluster, gatewayPassword, joinPassword, nodes: [], gateway: null, stages: [] });
  }

  start(): void {
    this.unsub = this.o.bus.subscribe(subjects.join(this.o.cluster), (m) => { void this.onJoin(m); });
  }

  close(): void {
    this.unsub?.();
  }

  /** Ids holding a credential now. */
  admitted(): string[] {
    return [...this.nodes.keys()];
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
    if (this.banned.has(m.id) || this.banned.has(m.nkey)) return refuse('this node was dropped for failing a spot check of its work');
    const known = this.nodes.get(m.id);
    if (known !== undefined && known.nkey !== m.nkey) return refuse(`node id ${m.id} is taken`);
    if (known === undefined && this.nodes.size >= (this.o.maxNodes ?? 256)) return refuse('too many nodes');
    if (known === undefined) this.nodes.set(m.id, { id: m.id, nkey: m.nkey });
    try {
      await this.apply();
    } catch (e) {
      this.nodes.delete(m.id);
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
