// Waiting for a bus that is down (issue 20): capped exponential backoff with jitter, so that the
// workers of a cluster whose server restarts do not all knock at the same instant, and a log that
// says so at a sane rate (the first failure, then at most once per interval) rather than once per
// attempt for as long as the outage lasts. "Equal jitter" of the AWS Architecture Blog's
// "Exponential Backoff And Jitter": half the capped delay fixed, half random.

import type { Log } from './types.ts';

/** Delay before retry number `attempt` (0-based): min·2^attempt capped at max, then jittered into
 *  [d/2, d]. */
export function backoffMs(attempt: number, minMs: number, maxMs: number): number {
  const d = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + Math.random() * (d / 2));
}

/** Logs a repeated condition once when it starts and then at most every `everyMs`, with how many
 *  times it happened and for how long. */
export class RateLimitedWarning {
  private count = 0;
  private since = 0;
  private loggedAt = 0;

  constructor(private readonly log: Log, private readonly everyMs = 30_000) {}

  note(fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (this.count === 0) this.since = now;
    this.count++;
    if (this.count > 1 && now - this.loggedAt < this.everyMs) return;
    this.loggedAt = now;
    this.log.warn({ ...fields, attempts: this.count, forMs: now - this.since }, msg);
  }

  /** The condition ended: the next one is logged at once. */
  reset(): void {
    this.count = 0;
  }
}
