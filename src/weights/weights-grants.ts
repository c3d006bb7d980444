// Who may fetch which weights (issue 19). The cluster token alone must not buy the checkpoint:
// the gateway hands each node, in its assignment (on the node's own assign subject, which only
// that node's credential can read), a random grant for exactly the layer range the plan gives
// it. The weights routes serve a request only the tensors of the grant it carries. A new plan
// replaces a node's grant; a node that leaves, is lost or holds no stage has none.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface WeightsGrant {
  readonly node: string;
  readonly start: number;
  readonly end: number;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class WeightsGrants {
  /** sha256(grant) hex → grant; and node → its grant's digest (one live grant per node). */
  private readonly byDigest = new Map<string, WeightsGrant & { readonly sum: Buffer }>();
  private readonly byNode = new Map<string, string>();
  /** Told of every grant made (the gateway starts building that range's int4 shard, issue 20). */
  private readonly listeners: ((node: string, start: number, end: number) => void)[] = [];

  onGrant(fn: (node: string, start: number, end: number) => void): void {
    this.listeners.push(fn);
  }

  grant(node: string, start: number, end: number): string {
    this.revoke(node);
    const token = `hwg_${randomBytes(24).toString('base64url')}`;
    const sum = digest(token);
    const key = sum.toString('hex');
    this.byDigest.set(key, { node, start, end, sum });
    this.byNode.set(node, key);
    for (const fn of this.listeners) fn(node, start, end);
    return token;
  }

  revoke(node: string): void {
    const key = this.byNode.get(node);
    if (key === undefined) return;
    this.byNode.delete(node);
    this.byDigest.delete(key);
  }

  /** The grant a bearer token stands for, or null. Looked up by its hash (the token itself is
   *  never a map key) and compared in constant time. */
  check(token: string): WeightsGrant | null {
    const sum = digest(token);
    const g = this.byDigest.get(sum.toString('hex'));
    if (g === undefined || !timingSafeEqual(g.sum, sum)) return null;
    return { node: g.node, start: g.start, end: g.end };
  }
}
