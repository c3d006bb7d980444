// Quality of one model's next-token distributions against a reference's, over a teacher-forced
// text, as llama.cpp's perplexity tool reports them with --kl-divergence: perplexity of each, the
// KL divergence KL(ref ‖ test) per position (mean with its standard error, median, p99, max), and
// how often both pick the same top token. Everything in float64 from the raw logits.

/** log-softmax of one row of logits, in float64. */
export function logSoftmax(row: Float32Array | Float64Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if ((row[i] as number) > max) max = row[i] as number;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp((row[i] as number) - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = (row[i] as number) - lse;
  return out;
}

/** KL(p ‖ q) for log-probabilities lp, lq (nats). */
export function klDivergence(lp: Float64Array, lq: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const l = lp[i] as number;
    if (l === -Infinity) continue;
    kl += Math.exp(l) * (l - (lq[i] as number));
  }
  return Math.max(0, kl);
}

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

export interface QualityFigures {
  /** Positions scored (each predicts the next token of the text). */
  readonly positions: number;
  readonly pplRef: number;
  readonly ppl: number;
  readonly klMean: number;
  /** Standard error of klMean. */
  readonly klStderr: number;
  readonly klMedian: number;
  readonly klP99: number;
  readonly klMax: number;
  /** Share of positions where both put the same token first. */
  readonly top1: number;
}

/** Accumulates one test model against the reference, position by position. */
export class QualityMeter {
  private readonly kls: number[] = [];
  private nllRef = 0;
  private nll = 0;
  private same = 0;

  /** One position: the reference's and the test model's logits, and the token that came next. */
  add(ref: Float32Array, test: Float32Array, next: number): void {
    const lp = logSoftmax(ref);
    const lq = logSoftmax(test);
    this.kls.push(klDivergence(lp, lq));
    this.nllRef -= lp[next] as number;
    this.nll -= lq[next] as number;
    if (argmax(lp) === argmax(lq)) this.same++;
  }

  figures(): QualityFigures {
    const n = this.kls.length;
    if (n === 0) throw new RangeError('no positions scored');
    const sorted = [...this.kls].sort((a, b) => a - b);
    const mean = this.kls.reduce((a, b) => a + b, 0) / n;
    const variance = n > 1 ? this.kls.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
    const at = (q: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
    return {
      positions: n,
      pplRef: Math.exp(this.nllRef / n),
      ppl: Math.exp(this.nll / n),
      klMean: mean,
      klStderr: Math.sqrt(variance / n),
      klMedian: at(0.5),
      klP99: at(0.99),
      klMax: sorted[n - 1] as number,
      top1: this.same / n,
    };
  }
}
