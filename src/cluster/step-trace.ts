// Where a step's time went, stage by stage, on one wall clock (issue 22 item 2: "pipelined
// prefill had ≥ 2 stages busy at once per the pipeline's own trace"). A result carries, per
// stage, the ms from receive to publish onward (stageMs) and the hop before each stage (hopMs),
// and the last stage's send time (sentAt): walking back from there gives each stage's
// [arrived, left) interval. Bounded, and off unless asked for (tests, benchmarks).

export interface StageSpan {
  readonly stage: number;
  /** Wall-clock ms (bus/wall-clock.ts): the step arrived at the stage, and left it. */
  readonly arrived: number;
  readonly left: number;
}

export interface TracedStep {
  readonly seq: string;
  readonly stepId: number;
  readonly spans: readonly StageSpan[];
}

/** Each stage's interval of one result, in stage order. */
export function spansOf(sentAt: number, stageMs: readonly number[], hopMs: readonly number[]): StageSpan[] {
  const out: StageSpan[] = [];
  let left = sentAt;
  for (let i = stageMs.length - 1; i >= 0; i--) {
    const arrived = left - (stageMs[i] ?? 0);
    out.push({ stage: i, arrived, left });
    left = arrived - (hopMs[i] ?? 0);
  }
  return out.reverse();
}

/** Whether two different stages were both holding work of these steps at some instant. */
export function stagesOverlap(steps: readonly TracedStep[]): boolean {
  const spans = steps.flatMap((s) => s.spans);
  for (const a of spans) {
    for (const b of spans) {
      if (a.stage < b.stage && a.arrived < b.left && b.arrived < a.left) return true;
    }
  }
  return false;
}

/** The last CAP steps traced. */
export class StepTrace {
  static readonly CAP = 1024;
  private ring: TracedStep[] = [];

  add(t: TracedStep): void {
    this.ring.push(t);
    if (this.ring.length > 2 * StepTrace.CAP) this.ring = this.ring.slice(-StepTrace.CAP);
  }

  steps(seq?: string): TracedStep[] {
    const all = this.ring.slice(-StepTrace.CAP);
    return seq === undefined ? all : all.filter((s) => s.seq === seq);
  }
}
