// The layout the workers already hold, as a plan (issue 20). A gateway that has no plan yet (it
// just started, or restarted) adopts it when it covers the model in order and every stage fits
// its node's offer: the workers serve at once, instead of refetching and rebuilding the ranges of
// a split that a speed probe's noise made look better (a restarted gateway re-split a 3B model
// and took 62 s to serve again; adopting what is held, 6.3 s).
import type { PlanStage } from '../bus/contract.ts';
import { stageBytes, type ModelCost, type PlanNode } from './planner.ts';

export interface Holding {
  readonly node: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
}

/** The stages `holdings` form for `model`, when they tile [0, numLayers) and each fits; else null. */
export function heldLayout(cost: ModelCost, model: string, nodes: readonly PlanNode[], holdings: readonly Holding[]): PlanStage[] | null {
  const held = holdings
    .filter((h) => h.model === model && nodes.some((n) => n.id === h.node))
    .map((h) => ({ node: h.node, start: h.start, end: h.end }))
    .sort((a, b) => a.start - b.start);
  let at = 0;
  for (const s of held) {
    const node = nodes.find((n) => n.id === s.node);
    if (s.start !== at || node === undefined || stageBytes(cost, s.start, s.end) > node.memory) return null;
    at = s.end;
  }
  return held.length === 0 || at !== cost.numLayers ? null : held;
}
