// Sub-millisecond wall-clock time, comparable between processes on one machine (hop latency is
// stamped by the sender and read by the receiver). Across machines it is only as good as their
// clock sync, which is why hop figures are taken by the benchmark on one host.
import { performance } from 'node:perf_hooks';

export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Waits until `ms` after `from` (wall clock): the simulated link delay (`--hop-delay-ms`, `hearth
 * bench --cluster`). setTimeout alone fires on whole milliseconds of libuv's loop clock, so a "2 ms"
 * hop took 2–3 ms (measured between two processes over nats-server: +2.4 ms, not +2.0); the last
 * millisecond is polled with setImmediate instead.
 */
export async function linkDelay(ms: number, from = wallMs()): Promise<void> {
  const until = from + ms;
  const coarse = Math.floor(until - wallMs() - 1);
  if (coarse > 0) await new Promise((r) => setTimeout(r, coarse));
  while (wallMs() < until) await new Promise((r) => setImmediate(r));
}
