// Issue 20 item 7: `hearth bench --cluster` reports each process's peak RSS (VmHWM) against what the
// planner says it holds, and stage balance. The bench itself is too slow for the suite (it was run
// by hand on the tiny model); this checks its pieces: the /proc reading and the printed verdicts.
import t from 'tap';
import { spawn } from 'node:child_process';
import { formatBenchCluster, peakRssBytes, rssBound, type BenchClusterResult } from '../src/cluster/bench-cluster.ts';

const MB = 1024 * 1024;

t.test('peak RSS comes from /proc/<pid>/status VmHWM, of this process or a child', { skip: process.platform !== 'linux' ? 'linux only' : false }, async (t) => {
  const self = peakRssBytes('self');
  t.ok(self !== null && self >= process.memoryUsage().rss * 0.5, `this process: ${((self ?? 0) / MB).toFixed(1)} MB`);
  // A child that touches 64 MB: its peak shows it, though the child's own RSS dropped since.
  const child = spawn(process.execPath, ['-e', 'let b = Buffer.alloc(64 * 1024 * 1024, 1); b = null; globalThis.gc?.(); process.stdout.write("ok\\n"); setTimeout(() => {}, 60000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  const peak = peakRssBytes(child.pid);
  t.ok(peak !== null && peak >= 64 * MB, `the child's peak holds its 64 MB buffer (${((peak ?? 0) / MB).toFixed(1)} MB)`);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.equal(peakRssBytes(child.pid), null, 'a process that is gone has no figure');
});

t.test('the memory table says which node is within issue 20\'s bound, and stage balance', async (t) => {
  const w = 100 * MB;
  const kv = 10 * MB;
  const r: BenchClusterResult = {
    model: 'm', quant: 'int4', threads: 1, workers: 2, promptTokens: 16, decodeTokens: 16, stages: [[0, 3], [3, 4]], rows: [],
    peakPositions: 126,
    memory: [
      { node: 'w1', range: [0, 3], peakRssBytes: 200 * MB, weightBytes: w, kvInUseBytes: kv, kvHeldPeakBytes: kv, boundBytes: rssBound(w, kv) },
      { node: 'w2', range: [3, 4], peakRssBytes: 400 * MB, weightBytes: w, kvInUseBytes: kv, kvHeldPeakBytes: kv, boundBytes: rssBound(w, kv) },
      { node: 'gateway', range: null, peakRssBytes: 900 * MB, weightBytes: 0, kvInUseBytes: 0, kvHeldPeakBytes: 0, boundBytes: 400 * MB, peakBeforeBaselinesBytes: 120 * MB },
    ],
    balance: [{ range: [0, 3], node: 'w1', msPerStep: 2 }, { range: [3, 4], node: 'w2', msPerStep: 3 }],
    balanceRatio: 1.5,
  };
  t.equal(rssBound(w, kv), 1.3 * 110 * MB + 150 * MB, 'bound = 1.3 × (weights + KV) + 150 MB');
  const out = formatBenchCluster(r);
  const line = (name: string): string => out.split('\n').find((l) => l.startsWith(name)) ?? '';
  t.match(line('w1'), /200\.0\s+100\.0\s+10\.0\s+10\.0\s+1\.82\s+293\.0\s+yes$/, 'w1: 200 MB ≤ 293 MB');
  t.match(line('w2'), /400\.0.*NO$/, 'w2: 400 MB over its bound');
  t.match(line('gateway'), /120\.0 \(900\.0 with baselines\).*yes$/, 'the gateway is judged before the baselines joined its process');
  t.match(out, /126 positions in flight/, 'says at how many positions KV was counted');
  t.match(out, /w1 \[0,3\) 2\.0 ms, w2 \[3,4\) 3\.0 ms; slowest ÷ fastest 1\.50/, 'stage balance');
});
