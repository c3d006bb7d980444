// Hop latencies (sender stamp → receiver handling), collected at the gateway from the per-hop
// list each result carries. A bounded ring, so it costs nothing to leave on.

const CAP = 1 << 16;

export class HopStats {
  private readonly ring = new Float64Array(CAP);
  private n = 0;

  /** `hops`: the stage-to-stage hops of one step; `back`: last stage → gateway. */
  add(hops: readonly number[], back: number): void {
    for (const h of hops) this.push(h);
    this.push(back);
  }

  private push(v: number): void {
    if (!Number.isFinite(v) || v < 0) return;
    this.ring[this.n % CAP] = v;
    this.n++;
  }

  reset(): void {
    this.n = 0;
  }

  /** The samples collected since the last reset (oldest dropped past the ring's capacity). */
  samples(): Float64Array {
    return this.ring.slice(0, this.count());
  }

  count(): number {
    return Math.min(this.n, CAP);
  }

  /** q in [0, 1]; NaN when empty. */
  quantile(q: number): number {
    const k = this.count();
    if (k === 0) return Number.NaN;
    const a = Array.from(this.ring.subarray(0, k)).sort((x, y) => x - y);
    return a[Math.min(k - 1, Math.max(0, Math.round(q * (k - 1))))] as number;
  }
}

/** Time each step spent on stage i (receive → publish onward), one HopStats per stage index. */
export class StageStats {
  private readonly per: HopStats[] = [];

  add(stageMs: readonly number[]): void {
    stageMs.forEach((v, i) => {
      let h = this.per[i];
      if (h === undefined) { h = new HopStats(); this.per[i] = h; }
      h.add([], v);
    });
  }

  reset(): void {
    for (const h of this.per) h.reset();
  }

  /** Samples of each stage's time since the last reset, in stage order. */
  samples(): Float64Array[] {
    return this.per.map((h) => h.samples());
  }

  /** Quantile q of each stage's time, in stage order. */
  quantiles(q: number): number[] {
    return this.per.map((h) => h.quantile(q));
  }
}
