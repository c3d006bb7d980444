// Whether a re-plan pays for the move (issue 22 item 1): pure, tested without a cluster.
//
// The plan serving is the baseline, as measured: its own stage + hop times (figures.ts), not a
// fresh guess from probes. A candidate's planner figure is calibrated by the same factor the
// serving plan's planner figure is off by now (measured cycle ÷ planned cycle, same perf), so a
// candidate identical to the serving plan predicts exactly the baseline, and a probe-optimistic
// newcomer cannot win on optimism alone (issue 22: "the plan with it predicts 10.4 tok/s, without
// it 11.7" moved the model while the plan being replaced measured 30.2). A move replays every
// sequence in flight and loads layers: it is adopted only when predicted faster by MOVE_MARGIN.

import type { PlanObjective, PlanPrediction } from './plan-choice.ts';
import type { Figures } from './figures.ts';

/** How much faster a new plan must be predicted before the cluster moves to it: a move costs
 *  a load (seconds) and a replay of every sequence in flight; 15% faster repays a 2 s move in
 *  ~15 s of serving, and stays above the few-% noise of measured step times. */
export const MOVE_MARGIN = 0.15;

export interface MoveVerdict {
  readonly adopt: boolean;
  /** The metric compared: single-stream tok/s ('fastest') or capacity tok/s ('balanced'). */
  readonly metric: 'single-stream' | 'capacity';
  readonly baseline: number;
  readonly candidate: number;
  /** 'measured': the baseline is the serving plan's own measured figure; 'planner': it has not
   *  served a stream alone yet, so its planner figure under today's perf. */
  readonly basis: 'measured' | 'planner';
  /** One sentence for the log and the page. */
  readonly why: string;
}

const f1 = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/**
 * @param servingNow the planner's figure for the serving plan under the perf known now
 * @param figures the serving plan's figures (figures.ts)
 * @param candidate the planner's figure for the plan it would choose now
 */
export function movePays(objective: PlanObjective, servingNow: PlanPrediction, figures: Pick<Figures, 'predictedTokS' | 'predictedBasis'>, candidate: PlanPrediction, margin = MOVE_MARGIN): MoveVerdict {
  const measuredCycle = figures.predictedBasis === 'serving-steps' && figures.predictedTokS !== null && figures.predictedTokS > 0 ? 1000 / figures.predictedTokS : null;
  // > 1: the planner is optimistic about this machine by that much; applied to every candidate.
  const factor = measuredCycle !== null && servingNow.cycleMs > 0 ? measuredCycle / servingNow.cycleMs : 1;
  const basis = measuredCycle !== null ? 'measured' : 'planner';
  if (objective === 'balanced') {
    const baseline = servingNow.capacityTokS / factor;
    const cand = candidate.capacityTokS / factor;
    const adopt = cand >= baseline * (1 + margin);
    return { adopt, metric: 'capacity', baseline, candidate: cand, basis,
      why: `${adopt ? 'moving' : 'keeping the plan serving'}: the new plan predicts ${f1(cand)} tok/s with every stage busy, the plan serving ${f1(baseline)} (${basis}); a move must predict ${Math.round(margin * 100)}% more to pay for itself` };
  }
  const baseline = measuredCycle !== null ? 1000 / measuredCycle : servingNow.tokS;
  const cand = 1000 / (candidate.cycleMs * factor);
  const adopt = cand >= baseline * (1 + margin);
  return { adopt, metric: 'single-stream', baseline, candidate: cand, basis,
    why: `${adopt ? 'moving' : 'keeping the plan serving'}: the new plan predicts ${f1(cand)} tok/s for one stream, the plan serving ${basis === 'measured' ? 'measures' : 'predicts'} ${f1(baseline)}; a move must predict ${Math.round(margin * 100)}% faster to pay for itself` };
}
