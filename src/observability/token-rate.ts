// Tokens per second over a sliding window of one-second buckets: O(1) per add, no timers, no
// arrays that grow. Buckets are keyed by absolute second, so a quiet period needs no sweeping.

export class TokenRate {
  private readonly counts: Float64Array;
  private readonly seconds: Float64Array;

  constructor(
    private readonly windowS: number,
    private readonly nowMs: () => number,
  ) {
    this.counts = new Float64Array(windowS);
    this.seconds = new Float64Array(windowS).fill(-1);
  }

  add(n: number): void {
    const s = Math.floor(this.nowMs() / 1000);
    const i = s % this.windowS;
    if (this.seconds[i] !== s) {
      this.seconds[i] = s;
      this.counts[i] = 0;
    }
    this.counts[i] = (this.counts[i] ?? 0) + n;
  }

  /** Average over the last `windowS` whole seconds plus the current partial one. */
  perSecond(): number {
    const nowS = this.nowMs() / 1000;
    const cur = Math.floor(nowS);
    let total = 0;
    for (let i = 0; i < this.windowS; i++) {
      const s = this.seconds[i] ?? -1;
      if (s >= 0 && cur - s < this.windowS) total += this.counts[i] ?? 0;
    }
    // The window covers windowS-1 whole seconds and the elapsed part of the current one.
    const span = this.windowS - 1 + (nowS - cur);
    return span > 0 ? total / span : 0;
  }
}
