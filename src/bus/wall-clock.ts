// Sub-millisecond wall-clock time, comparable between processes on one machine (hop latency is
// stamped by the sender and read by the receiver). Across machines it is only as good as their
// clock sync, which is why hop figures are taken by the benchmark on one host.
import { performance } from 'node:perf_hooks';

export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
