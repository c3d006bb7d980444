// Speculative decoding, exact (issue 11). A decode step may carry k draft tokens after the last
// accepted one; every stage runs them as one chunk and the last stage returns the target's choice
// after each of the k+1 positions — drawn exactly as k+1 one-token steps would draw them (argmax,
// or the (seed, position) RNG over the history up to that position). The scheduler accepts the
// longest prefix of drafts equal to those choices and appends the choice after it, so the output
// is token for token what decoding without speculation gives (Leviathan et al. 2023 with a
// deterministic sampler: acceptance is equality, no probability ratio needed). Rejected positions
// stay in the stages' KV until the sequence's next step, which carries `rewind` and cuts them.
//
// Drafts cost nothing to make: grammar jump-forward (the constraint's forced continuation; the
// model still verifies each token, it may prefer another tokenization) first, else prompt lookup.
// k follows the measured acceptance: with a per-token acceptance rate a the accepted run is
// geometric with mean a/(1−a), so k ≈ that (at least 1, at most maxDraft); a source whose rate
// falls low drafts only now and then (a probe), since a rejected draft still costs compute.

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

/** Acceptance of one draft source, as decayed counts of accepted and rejected draft tokens. */
class Rate {
  private hits = 0;
  private misses = 0;
  private skipped = 0;

  /** Estimated per-token acceptance (Laplace-smoothed, so a fresh source starts at 1/2 + hope). */
  rate(): number {
    return (this.hits + 1.5) / (this.hits + this.misses + 2);
  }

  /** Draft length for the next step. */
  k(max: number): number {
    const a = Math.min(this.rate(), 0.95);
    return Math.max(1, Math.min(max, Math.round(a / (1 - a))));
  }

  /** A low rate drafts only every 8th chance (a probe), so the rate can recover. */
  worthIt(): boolean {
    if (this.rate() >= 0.3) return true;
    return ++this.skipped % 8 === 0;
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

  constructor(opts: SpeculateOptions) {
    this.opts = opts;
  }

  /**
   * Drafts continuing tokens[0, total), at most `room` tokens (the budget and context left after
   * the token the step samples anyway). Empty: an ordinary one-token step.
   */
  draft(tokens: Int32Array, total: number, room: number, constraint: TokenConstraint | undefined): Draft | null {
    const cap = Math.min(room, this.opts.maxDraft);
    if (cap <= 0) return null;
    if (constraint !== undefined && this.opts.jumpForward && constraint.forced !== undefined) {
      const r = this.rates.grammar;
      // The grammar's forced text is drafted whole (up to the cap): no other text can follow, so
      // only a tokenization the model prefers over the tokenizer's can reject it.
      const forced = r.worthIt() ? constraint.forced(cap) : [];
      if (forced.length > 0) return { source: 'grammar', tokens: forced };
    }
    const drafter = this.opts.drafter;
    if (drafter !== undefined && this.rates.drafter.worthIt()) {
      const found = drafter(tokens, total, this.rates.drafter.k(cap)).slice(0, cap);
      if (found.length > 0) return { source: 'drafter', tokens: found };
    }
    if (this.opts.lookup) {
      const r = this.rates.lookup;
      if (!r.worthIt()) return null;
      const found = lookupDraft(tokens, total, r.k(cap), this.opts.ngramMax, this.opts.ngramMin);
      if (found.length > 0) return { source: 'lookup', tokens: found };
    }
    return null;
  }

  record(source: DraftSource, drafted: number, accepted: number): void {
    this.rates[source].record(drafted, accepted);
  }
}
