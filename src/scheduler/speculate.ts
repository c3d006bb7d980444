// Speculative decoding, exact (issue 11). A decode step may carry k draft tokens after the last
// accepted one; every stage runs them as one chunk and the last stage returns the target's choice
// after each of the k+1 positions — drawn exactly as k+1 one-token steps would draw them (argmax,
// or the (seed, position) RNG over the history up to that position). The scheduler accepts the
// longest prefix of drafts equal to those choices and appends the choice after it, so the output
// is token for token what decoding without speculation gives (Leviathan et al. 2023 with a
// deterministic sampler: acceptance is equality, no probability ratio needed). Rejected positions
// stay in the stages' KV until the sequence's next step, which carries `rewind` and cuts them.
//
// Drafts cost nothing to make: grammar jump-forward (the constraint's forced continuation, spelled
// as the constraint itself will pick it, so only a forced span's last token can be rejected) first,
// else prompt lookup.
// k follows the measured acceptance and the measured cost of a pass (PassCost): with per-token
// acceptance a a verify of k drafts yields (1 − a^(k+1))/(1 − a) tokens, and k is the length that
// gives the most tokens per millisecond — 0 (no draft, but a probe now and then) where drafting
// does not pay, so a plain prompt decodes as fast as without speculation.

import { lookupDraft } from './draft-lookup.ts';
import type { TokenConstraint } from './types.ts';

export interface SpeculateOptions {
  /** Most draft tokens per step (k). */
  readonly maxDraft: number;
  /** Prompt lookup: longest and shortest n-gram to match. */
  readonly ngramMax: number;
  readonly ngramMin: number;
  /** Draft from the grammar's forced continuation under a constraint. */
  readonly jumpForward: boolean;
  /** Draft by prompt lookup. */
  readonly lookup: boolean;
  /** Another draft source (a small draft model beside the gateway, a test's oracle): up to `max`
   *  tokens continuing tokens[0, total). Asked before prompt lookup. */
  readonly drafter?: (tokens: Int32Array, total: number, max: number) => readonly number[];
  /** Pick k from measured acceptance and pass cost (default true). false: always offer up to
   *  maxDraft — the tests use it, since measured timings would make what gets drafted vary. */
  readonly adaptive?: boolean;
}

export const DEFAULT_SPECULATE_OPTIONS: SpeculateOptions = Object.freeze({
  maxDraft: 8,
  ngramMax: 3,
  ngramMin: 1,
  jumpForward: true,
  lookup: true,
});

/** Cumulative counts for /metrics and `hearth bench`. */
export interface SpeculationStats {
  /** Decode passes through the pipeline (a verify step is one pass). */
  passes: number;
  /** Tokens emitted by decode passes. */
  tokens: number;
  /** Draft tokens sent for verification, and how many of them the target agreed with. */
  drafted: number;
  accepted: number;
}

export function emptySpeculationStats(): SpeculationStats {
  return { passes: 0, tokens: 0, drafted: 0, accepted: 0 };
}

export const DRAFT_SOURCES = ['grammar', 'drafter', 'lookup'] as const;
export type DraftSource = (typeof DRAFT_SOURCES)[number];

export interface Draft {
  readonly source: DraftSource;
  readonly tokens: readonly number[];
}

/**
 * What a pass costs on this pipeline, shared by all sequences: `base` ms for an ordinary decode
 * token (a one-token step, or a chained step where the pipeline chains), and `perPos` ms more per
 * extra position of a verify step. Where a verify chunk costs nearly a pass per position (int4
 * runs exact chunks position by position) drafting only pays when acceptance is high; where it is
 * cheap (fp32, or a LAN hop dwarfing compute) long drafts pay.
 */
export class PassCost {
  private base = NaN;
  private perPos = NaN;

  /** One pass of `positions` positions took `ms` (an ordinary token: positions = 1). */
  observe(positions: number, ms: number): void {
    if (!(ms >= 0)) return;
    if (positions <= 1) this.base = Number.isNaN(this.base) ? ms : 0.8 * this.base + 0.2 * ms;
    else if (!Number.isNaN(this.base)) {
      const per = Math.max(0, ms - this.base) / (positions - 1);
      this.perPos = Number.isNaN(this.perPos) ? per : 0.8 * this.perPos + 0.2 * per;
    }
  }

  /**
   * The draft length that maximizes expected tokens per ms for per-token acceptance a: a verify
   * of k drafts yields (1 − a^(k+1)) / (1 − a) tokens for base + k·perPos ms. 0: don't draft.
   * Before anything is measured, drafts are assumed cheap (a tenth of a pass per position).
   */
  bestK(a: number, cap: number): number {
    const base = Number.isNaN(this.base) ? 1 : this.base;
    const per = Number.isNaN(this.perPos) ? 0.1 * base : this.perPos;
    const p = Math.min(a, 0.98);
    let best = 0;
    let bestRate = 1 / base;
    for (let k = 1; k <= cap; k++) {
      const rate = (1 - p ** (k + 1)) / (1 - p) / (base + k * per);
      if (rate > bestRate * 1.02) { best = k; bestRate = rate; }
    }
    return best;
  }
}

/** Acceptance of one draft source, as decayed counts of accepted and rejected draft tokens. */
class Rate {
  private hits = 0;
  private misses = 0;
  private skipped = 0;

  /** Estimated per-token acceptance (Laplace-smoothed, so a fresh source starts at 1/2 + hope). */
  rate(): number {
    return (this.hits + 1.5) / (this.hits + this.misses + 2);
  }

  /** Draft length for the next step (0: none). When drafting does not pay, every 16th chance
   *  still drafts one or two tokens (a probe), so a rate that improves is noticed. */
  k(cost: PassCost, cap: number): number {
    const k = cost.bestK(this.rate(), cap);
    if (k > 0) return k;
    return ++this.skipped % 16 === 0 ? Math.min(cap, 2) : 0;
  }

  /** One verify step: `accepted` of `drafted` agreed (a run, cut at the first disagreement). */
  record(drafted: number, accepted: number): void {
    this.hits = this.hits * 0.8 + accepted;
    this.misses = this.misses * 0.8 + (accepted < drafted ? 1 : 0);
  }
}

/** Per-sequence draft planner: which drafts to send with the next decode step. */
export class Speculator {
  private readonly opts: SpeculateOptions;
  private readonly rates: Record<DraftSource, Rate> = { grammar: new Rate(), drafter: new Rate(), lookup: new Rate() };
  private readonly cost: PassCost;

  private draftLength(source: DraftSource, cap: number): number {
    return this.opts.adaptive === false ? cap : this.rates[source].k(this.cost, cap);
  }

  constructor(opts: SpeculateOptions, cost: PassCost = new PassCost()) {
    this.opts = opts;
    this.cost = cost;
  }

  /**
   * Drafts continuing tokens[0, total), at most `room` tokens (the budget and context left after
   * the token the step samples anyway). Empty: an ordinary one-token step.
   */
  draft(tokens: Int32Array, total: number, room: number, constraint: TokenConstraint | undefined): Draft | null {
    const cap = Math.min(room, this.opts.maxDraft);
    if (cap <= 0) return null;
    if (constraint !== undefined && this.opts.jumpForward && constraint.forced !== undefined) {
      // The grammar's forced text, as the constraint itself will spell it (canonical tokens):
      // every draft but a forced span's last token is certain to be accepted.
      const k = this.draftLength('grammar', cap);
      const forced = k > 0 ? constraint.forced(k) : [];
      if (forced.length > 0) return { source: 'grammar', tokens: forced };
    }
    const drafter = this.opts.drafter;
    if (drafter !== undefined) {
      const k = this.draftLength('drafter', cap);
      const found = k > 0 ? drafter(tokens, total, k).slice(0, k) : [];
      if (found.length > 0) return { source: 'drafter', tokens: found };
    }
    if (this.opts.lookup) {
      const k = this.draftLength('lookup', cap);
      const found = k > 0 ? lookupDraft(tokens, total, k, this.opts.ngramMax, this.opts.ngramMin) : [];
      if (found.length > 0) return { source: 'lookup', tokens: found };
    }
    return null;
  }

  record(source: DraftSource, drafted: number, accepted: number): void {
    this.rates[source].record(drafted, accepted);
  }
}
