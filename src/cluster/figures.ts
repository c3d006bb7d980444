// The cluster's speed figures, computed in one place (issue 22 item 3): GET /v1/cluster's
// forecast, `hearth status`, `hearth doctor` (through the gateway) and the status page all show
// what figuresOf() returns, so they cannot disagree at the same moment.
//
// - measured: single-stream decode tok/s over a sliding window of tokens actually emitted — the
//   last WINDOW_TOKENS chained tokens of a stream that decoded alone, on the serving plan, within
//   WINDOW_MS — as tokens ÷ the time they took (not 1 / the median gap: a burst of results that
//   arrive together made that figure 50× the truth, "measured 22110.2" while the chat saw 411).
// - predicted: for the plan serving, the per-token cycle from its own measured parts — each
//   stage's mean step time plus each hop's mean, as the results of those same single-stream
//   tokens carry them (hops on the critical path only: last stage → stage 0 → … → last; the
//   answer to the gateway runs beside the next step). Before the plan has served alone, the
//   planner's figure (probe or heartbeat speeds, plan-choice.ts). The ratio of the two cycles is
//   the calibration applied to candidate plans, so a re-plan compares like with like.
// - emitted: every token of every stream in the last EMITTED_WINDOW_MS ÷ that window (what the
//   page's "tok/s" means; nodes' positions/s count prompt positions too).
//
// Pure parts (figuresOf) are tested without a cluster; ServingMeter is the bounded state the
// pipeline feeds from its result handler.

/** Single-stream tokens the measured figure averages over (the newest win). */
export const WINDOW_TOKENS = 64;
/** Older tokens than this do not count. */
export const WINDOW_MS = 30_000;
/** The window of the all-streams emitted rate. */
export const EMITTED_WINDOW_MS = 10_000;
/** Single-stream tokens needed before the serving plan's own parts replace the planner's guess. */
export const MIN_SAMPLES = 8;
/** Calibration is clamped: a factor outside this range says the samples are wrong, not the model. */
const CALIBRATION_RANGE = [0.25, 4] as const;

/** One chained single-stream token: its gap since the previous one and where that time went. */
export interface TokenSample {
  /** performance.now() when it arrived at the gateway. */
  readonly at: number;
  /** ms since the previous token of the same stream. */
  readonly gapMs: number;
  /** Per stage: ms from receive to publish onward (queue + compute + sampling). */
  readonly stageMs: readonly number[];
  /** Per hop on the cycle: [last → stage 0, stage 0 → 1, …]. */
  readonly hopMs: readonly number[];
}

export interface PlannerFigure {
  readonly tokS: number;
  readonly cycleMs: number;
}

export interface Figures {
  /** Predicted single-stream decode tok/s of the plan serving (null: no plan). */
  readonly predictedTokS: number | null;
  /** 'serving-steps': from the plan's own measured stage and hop times; 'planner': its probe or
   *  heartbeat figures, before it served a stream alone. */
  readonly predictedBasis: 'serving-steps' | 'planner' | null;
  /** The parts of the serving-steps prediction (ms), stage by stage and hop by hop. */
  readonly predictedStagesMs: readonly number[];
  readonly predictedHopsMs: readonly number[];
  /** The planner's own figure for the same plan (what it compared candidates with). */
  readonly plannerTokS: number | null;
  /** Measured single-stream decode tok/s over the window; null until MIN_SAMPLES tokens. */
  readonly measuredTokS: number | null;
  readonly measuredTokens: number;
  /** What the window is, in words (shown on the page and by `hearth status`). */
  readonly window: string;
  /** All streams: tokens emitted in the last EMITTED_WINDOW_MS ÷ that window. */
  readonly emittedTokS: number;
  /** Serving cycle measured ÷ the planner's: multiplies candidates' cycles (null: not measured). */
  readonly calibration: number | null;
}

/** Means, not medians: tok/s over a window is a mean rate, and the mean of a sum is the sum of
 *  the means — medians of skewed step times (a slowed or busy stage) predicted 2× the speed. */
function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** The window of samples that counts at `now`: the newest WINDOW_TOKENS within WINDOW_MS. */
export function windowOf(samples: readonly TokenSample[], now: number): TokenSample[] {
  const recent = samples.filter((s) => now - s.at <= WINDOW_MS);
  return recent.slice(-WINDOW_TOKENS);
}

/**
 * The figures, from the serving plan's single-stream token samples, the emitted-token times of
 * every stream, and the planner's figure for the plan (null without a plan).
 */
export function figuresOf(samples: readonly TokenSample[], emittedAt: readonly number[], planner: PlannerFigure | null, now: number): Figures {
  const w = windowOf(samples, now);
  const measured = w.length >= MIN_SAMPLES ? (1000 * w.length) / w.reduce((a, s) => a + s.gapMs, 0) : null;
  // The parts: only samples that carry every stage and hop of the plan (the cycle's shape).
  const k = w.reduce((a, s) => Math.max(a, s.stageMs.length), 0);
  const full = w.filter((s) => s.stageMs.length === k && s.hopMs.length === k);
  let stagesMs: number[] = [];
  let hopsMs: number[] = [];
  let servingTokS: number | null = null;
  if (planner !== null && k > 0 && full.length >= MIN_SAMPLES) {
    stagesMs = Array.from({ length: k }, (_, i) => mean(full.map((s) => s.stageMs[i] as number)));
    hopsMs = Array.from({ length: k }, (_, i) => mean(full.map((s) => Math.max(0, s.hopMs[i] as number))));
    const cycle = stagesMs.reduce((a, b) => a + b, 0) + hopsMs.reduce((a, b) => a + b, 0);
    if (cycle > 0) servingTokS = 1000 / cycle;
  }
  const calibration = servingTokS !== null && planner !== null && planner.cycleMs > 0
    ? Math.min(CALIBRATION_RANGE[1], Math.max(CALIBRATION_RANGE[0], (1000 / servingTokS) / planner.cycleMs))
    : null;
  const since = now - EMITTED_WINDOW_MS;
  let emitted = 0;
  for (const t of emittedAt) if (t > since) emitted++;
  return {
    predictedTokS: servingTokS !== null ? r3(servingTokS) : planner !== null ? r3(planner.tokS) : null,
    predictedBasis: servingTokS !== null ? 'serving-steps' : planner !== null ? 'planner' : null,
    predictedStagesMs: stagesMs.map(r3),
    predictedHopsMs: hopsMs.map(r3),
    plannerTokS: planner === null ? null : r3(planner.tokS),
    measuredTokS: measured === null ? null : r3(measured),
    measuredTokens: w.length,
    window: `the last ${w.length} of up to ${WINDOW_TOKENS} tokens a stream decoded alone on this plan, within ${WINDOW_MS / 1000} s`,
    emittedTokS: r3(emitted / (EMITTED_WINDOW_MS / 1000)),
    calibration: calibration === null ? null : r3(calibration),
  };
}

/** A candidate's planner cycle, calibrated by the serving plan's measured ÷ planned ratio. */
export function calibratedTokS(plannerCycleMs: number, calibration: number | null): number {
  return 1000 / (plannerCycleMs * (calibration ?? 1));
}

/** Bounded state the pipeline feeds: the serving plan's single-stream samples and every token's
 *  arrival time. A new epoch starts a new window (the old plan's figures say nothing of this one). */
export class ServingMeter {
  private epoch = -1;
  private samples: TokenSample[] = [];
  /** Ring of arrival times (performance.now()) of every emitted token. */
  private readonly emitted = new Float64Array(4096);
  private emittedN = 0;

  /** A token of any stream arrived. */
  emit(at: number): void {
    this.emitted[this.emittedN % this.emitted.length] = at;
    this.emittedN++;
  }

  /** A chained token of a stream that decoded alone, on plan `epoch`. */
  single(epoch: number, s: TokenSample): void {
    if (epoch !== this.epoch) { this.epoch = epoch; this.samples = []; }
    this.samples.push(s);
    if (this.samples.length > 2 * WINDOW_TOKENS) this.samples = this.samples.slice(-WINDOW_TOKENS);
  }

  figures(epoch: number, planner: PlannerFigure | null, now = performance.now()): Figures {
    const n = Math.min(this.emittedN, this.emitted.length);
    return figuresOf(epoch === this.epoch ? this.samples : [], Array.from(this.emitted.subarray(0, n)), planner, now);
  }
}

/** The one sentence every surface shows (page, `hearth status`, `hearth doctor`). */
export function summarize(f: { readonly predictedTokS: number | null; readonly predictedBasis: string | null; readonly measuredTokS: number | null; readonly window: string; readonly emittedTokS: number }): string {
  const f1 = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  if (f.predictedTokS === null) return 'no plan serves: nothing to predict';
  const basis = f.predictedBasis === 'serving-steps' ? 'from its measured stage and hop times' : 'planner estimate; not served a stream alone yet';
  const measured = f.measuredTokS === null ? 'not measured yet' : `measured ${f1(f.measuredTokS)} over ${f.window}`;
  return `one stream: predicted ${f1(f.predictedTokS)} tok/s (${basis}), ${measured}; all streams now ${f1(f.emittedTokS)} tok/s (last ${EMITTED_WINDOW_MS / 1000} s)`;
}
