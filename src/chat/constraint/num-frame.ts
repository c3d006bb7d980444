// A number with bounds (minimum/maximum, exclusive or not) and an integer multipleOf, enforced
// digit by digit. Values are counted in units of 10^-F (F fraction digits at most: 0 for
// integers), so every check is exact integer arithmetic: a digit is allowed only if some way to
// finish the number lands inside the bounds on a multiple. Output is plain decimal
// `-?(0|[1-9]\d*)(\.\d+)?` with at most 15 significant digits, which every JSON parser reads back
// to a distinct double, so what the decoder proved about the decimal holds for the parsed value.

import { Frame, complete } from './frame-base.ts';

/** Fraction digits for `number` (integers have none). */
export const FRACTION_DIGITS = 6;
const SIGNIFICANT = 15;

export interface BoundedNum {
  readonly k: 'bnum';
  /** Fraction digits allowed (0: integer). */
  readonly frac: number;
  /** Inclusive bounds in units of 10^-frac. */
  readonly lo: number;
  readonly hi: number;
  /** Values must be multiples of this many units (1: any). */
  readonly step: number;
}

/** Integer-part digits at most. */
const intDigits = (n: BoundedNum): number => SIGNIFICANT - n.frac;

const gcd = (a: bigint, b: bigint): bigint => { while (b !== 0n) [a, b] = [b, a % b]; return a < 0n ? -a : a; };

/** x⁻¹ mod m (gcd(x, m) = 1), extended Euclid. */
function inverse(x: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [((x % m) + m) % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

/**
 * Is some value of the progression ±(base + i·scale), 0 ≤ i < count (magnitudes in units; the
 * sign from neg) inside the bounds and a multiple of step? The bounds cut a run of indices; the
 * multiples among them solve i·scale ≡ −base (mod step).
 */
export function apHit(n: BoundedNum, neg: boolean, base: number, scale: number, count: number): boolean {
  // Magnitude bounds; a negative sign needs a magnitude of at least one unit (never "-0").
  const lo = neg ? Math.max(-n.hi, 1) : n.lo;
  const hi = neg ? -n.lo : n.hi;
  const i0 = Math.max(0, Math.ceil((lo - base) / scale));
  const i1 = Math.min(count - 1, Math.floor((hi - base) / scale));
  if (i0 > i1) return false;
  if (n.step === 1) return true;
  const step = BigInt(n.step);
  const sc = BigInt(scale) % step;
  const rb = ((-BigInt(base) % step) + step) % step;
  const g = gcd(sc, step);
  if (rb % g !== 0n) return false;
  const m = step / g;
  const first = m === 1n ? 0n : ((rb / g) * inverse(sc / g, m)) % m;
  // Smallest i ≥ i0 with i ≡ first (mod m).
  const I0 = BigInt(i0);
  const i = I0 + ((((first - I0) % m) + m) % m);
  return i <= BigInt(i1);
}

// Phases: 0 nothing yet, 1 after '-', 2 integer digits, 3 after '.', 4 fraction digits.
export class BoundedNumFrame extends Frame {
  constructor(
    parent: Frame | null,
    private readonly n: BoundedNum,
    private readonly ph: number,
    private readonly neg: boolean,
    /** Integer part so far and its digit count; fraction digits so far (value and count). */
    private readonly iv: number,
    private readonly id: number,
    private readonly fv: number,
    private readonly fd: number,
  ) { super(parent); }

  static start(parent: Frame | null, n: BoundedNum): BoundedNumFrame {
    return new BoundedNumFrame(parent, n, 0, false, 0, 0, 0, 0);
  }

  /**
   * Fewest bytes to a complete allowed number from here (0: it may end now; Infinity: never).
   * Every way to finish — j more integer digits, then optionally '.' and k fraction digits —
   * reaches an arithmetic progression of values; the cheapest one with an allowed value wins.
   */
  need(): number {
    const n = this.n;
    const F = n.frac;
    const U = 10 ** F;
    let best = Infinity;
    /** Integer part ip·10^j + (j free digits), j ≤ free, then optionally k fraction digits. */
    const fromInt = (neg: boolean, ip: number, free: number, cost0: number): void => {
      for (let j = 0; j <= free && cost0 + j < best; j++) {
        const base = ip * 10 ** j * U;
        const span = 10 ** j;
        if (apHit(n, neg, base, U, span)) best = Math.min(best, cost0 + j);
        for (let k = 1; k <= F && cost0 + j + 1 + k < best; k++) {
          if (apHit(n, neg, base, 10 ** (F - k), span * 10 ** k)) best = cost0 + j + 1 + k;
        }
      }
    };
    switch (this.ph) {
      case 0: case 1:
        for (const neg of this.ph === 1 ? [true] : [false, true]) {
          const sc = neg && this.ph === 0 ? 1 : 0;
          // "0" and "0.ddd".
          fromInt(neg, 0, 0, sc + 1);
          // L integer digits, the first nonzero: 10^(L-1) … 10^L - 1, then fractions.
          for (let L = 1; L <= intDigits(n) && sc + L < best; L++) {
            const base = 10 ** (L - 1) * U;
            const span = 9 * 10 ** (L - 1);
            if (apHit(n, neg, base, U, span)) best = sc + L;
            for (let k = 1; k <= F && sc + L + 1 + k < best; k++) {
              if (apHit(n, neg, base, 10 ** (F - k), span * 10 ** k)) best = sc + L + 1 + k;
            }
          }
        }
        return best;
      case 2:
        fromInt(this.neg, this.iv, this.iv === 0 ? 0 : intDigits(n) - this.id, 0);
        return best;
      default: {
        const base = this.iv * U + this.fv * 10 ** (F - this.fd);
        if (this.fd > 0 && apHit(n, this.neg, base, 1, 1)) return 0;
        for (let k = 1; this.fd + k <= F; k++) {
          if (apHit(n, this.neg, base, 10 ** (F - this.fd - k), 10 ** k)) return k;
        }
        return Infinity;
      }
    }
  }

  private ok(): boolean {
    if (this.ph !== 2 && !(this.ph === 4)) return false;
    const U = 10 ** this.n.frac;
    return apHit(this.n, this.neg, this.iv * U + this.fv * 10 ** (this.n.frac - this.fd), 1, 1);
  }

  private go(ph: number, neg: boolean, iv: number, id: number, fv: number, fd: number): Frame[] {
    const f = new BoundedNumFrame(this.parent, this.n, ph, neg, iv, id, fv, fd);
    return f.need() < Infinity ? [f] : [];
  }

  step(b: number): Frame[] {
    const d = b - 0x30;
    const digit = d >= 0 && d <= 9;
    const n = this.n;
    switch (this.ph) {
      case 0:
        if (b === 0x2d) return this.go(1, true, 0, 0, 0, 0);
        return digit ? this.go(2, false, d, 1, 0, 0) : [];
      case 1: return digit ? this.go(2, true, d, 1, 0, 0) : [];
      case 2:
        if (digit && this.iv !== 0 && this.id < intDigits(n)) return this.go(2, this.neg, this.iv * 10 + d, this.id + 1, 0, 0);
        if (b === 0x2e && n.frac > 0) return this.go(3, this.neg, this.iv, this.id, 0, 0);
        break;
      case 3: return digit ? this.go(4, this.neg, this.iv, this.id, d, 1) : [];
      case 4:
        if (digit && this.fd < n.frac) return this.go(4, this.neg, this.iv, this.id, this.fv * 10 + d, this.fd + 1);
        break;
    }
    // Any other byte ends the number if it is complete and allowed; the byte belongs to the parent.
    return this.ok() ? complete(this.parent, 0).step(b) : [];
  }

  canEnd(): boolean { return this.ok() && complete(this.parent, 0).canEnd(); }
  rem(): number { return this.need(); }
}
