// Who may say what on the bus (issue 14): the NATS permissions of each kind of connection,
// computed from the plan. nats-server enforces them (a publish outside the allow-list is dropped
// with -ERR 'Permissions Violation', a subscription outside it is refused), so a node holding a
// credential can do exactly what its place in the plan needs and nothing else:
//   - a stage receives only its own inputs (its step subject) and its assignments;
//   - stage k publishes steps only to stage k+1; the last stage publishes results (tokens) only to
//     its gateway, and steps to stage 0 (issue 10's two-hop path: the last stage sends the next
//     decode step straight to stage 0, so that edge is part of the plan too);
//   - every member may publish membership (announce/heartbeat/leave/loaded), faults (a step it
//     could not run: at most it makes the gateway replay) and probe replies — each only on the
//     subjects that carry its OWN id (issue 19), so it cannot speak in another node's name;
//   - only the gateway receives results, sends prompts (steps to stage 0) and assignments.
// The join user (password = the cluster token) may only ask for a credential.

import { subjects, type PlanStage } from '../bus/contract.ts';
import type { NatsUser } from '../cluster/nats-server.ts';

export const JOIN_USER = 'hearth-join';
export const GATEWAY_USER = 'hearth-gateway';

export interface SubjectPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** The token's only use: ask for a credential, and hear the answer (which holds no secret). */
export function joinPermissions(): SubjectPermissions {
  return { publish: [subjects.join('*')], subscribe: [subjects.joined('*', '*')] };
}

/** A worker node's permissions under a plan (stages = [] or a plan without it: idle member). */
export function nodePermissions(cluster: string, id: string, gateway: string | null, stages: readonly PlanStage[]): SubjectPermissions {
  const publish = [
    subjects.announce(cluster, id), subjects.heartbeat(cluster, id), subjects.leave(cluster, id), subjects.loaded(cluster, id),
    subjects.fault(cluster, '*', id),
    // Answers to link probes (the gateway's planner, issue 10).
    subjects.probeReply(cluster, '*', id),
  ];
  const k = stages.findIndex((s) => s.node === id);
  if (k >= 0 && gateway !== null) {
    const next = stages[k + 1];
    if (next !== undefined) {
      publish.push(subjects.step(cluster, next.node));
    } else {
      publish.push(subjects.result(cluster, gateway));
      const first = stages[0];
      if (first !== undefined) publish.push(subjects.step(cluster, first.node));
    }
  }
  return {
    publish: [...new Set(publish)],
    subscribe: [subjects.assign(cluster, id), subjects.step(cluster, id), subjects.free(cluster), subjects.hello(cluster), subjects.probe(cluster, id)],
  };
}

export interface TrustedNode {
  readonly id: string;
  readonly nkey: string;
}

/** The server's whole user list: the gateway (unrestricted: it also runs JetStream for stored
 *  responses), the join user, and one nkey user per admitted node. */
export function serverUsers(o: {
  readonly cluster: string; readonly gatewayPassword: string; readonly joinPassword: string;
  readonly nodes: readonly TrustedNode[]; readonly gateway: string | null; readonly stages: readonly PlanStage[];
}): NatsUser[] {
  return [
    { user: GATEWAY_USER, password: o.gatewayPassword },
    { user: JOIN_USER, password: o.joinPassword, permissions: joinPermissions() },
    ...o.nodes.map((n) => ({ nkey: n.nkey, permissions: nodePermissions(o.cluster, n.id, o.gateway, o.stages) })),
  ];
}
