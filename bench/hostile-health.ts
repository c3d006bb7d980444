// Issue 19, Must show: while one client sends the hostile bodies of item 2, the gateway answers
// /health within 100 ms throughout and no worker is declared lost. The gateway runs as `hearth up`
// (demo model, 2 workers) in its own process; this process only sends the bodies (built before the
// clock starts) and polls /health every 10 ms, so what it times is the gateway, not itself.
//   node --import tsx bench/hostile-health.ts [rounds]
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostileBodies } from '../test/helpers/hostile-bodies.ts';

const rounds = Number(process.argv[2] ?? 3);
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-hostile-'));
const port = 18000 + Math.floor(Math.random() * 1000);
const natsPort = port + 1000;
const up = spawn(process.execPath, ['bin/hearth.js', 'up', '--workers', '2', '--port', String(port), '--nats-port', String(natsPort)], {
  env: { ...process.env, HEARTH_HOME: home, HEARTH_CACHE_DIR: path.join(home, 'cache'), HEARTH_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
});
let log = '';
up.stdout.on('data', (b: Buffer) => { log += b.toString(); });
up.stderr.on('data', (b: Buffer) => { log += b.toString(); });
const origin = `http://127.0.0.1:${port}`;
try {
  for (let t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 250))) {
    if (Date.now() - t0 > 180_000) throw new Error(`not ready after 180 s:\n${log.slice(-2000)}`);
    const ok = await fetch(`${origin}/ready`).then((r) => r.ok, () => false);
    if (ok) break;
  }
  const model = ((await (await fetch(`${origin}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
  const bodies = hostileBodies(model);
  const epochBefore = ((await (await fetch(`${origin}/v1/cluster`)).json()) as { epoch: number }).epoch;
  // The poller runs on a thread of its own: sending megabyte bodies keeps this thread busy, and
  // that must not count as the gateway's latency.
  const poller = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const health = [];
    let polling = true;
    parentPort.on('message', () => { polling = false; });
    (async () => {
      while (polling) {
        const t0 = performance.now();
        const r = await fetch(workerData.url);
        await r.arrayBuffer();
        health.push(performance.now() - t0);
        await new Promise((res) => setTimeout(res, 10));
      }
      parentPort.postMessage(health);
    })();
  `, { eval: true, workerData: { url: `${origin}/health` } });
  const health = new Promise<number[]>((resolve) => poller.once('message', resolve));
  await new Promise((r) => setTimeout(r, 300));
  const statuses: number[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const h of bodies) {
      const r = await fetch(`${origin}${h.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: h.body });
      await r.arrayBuffer();
      statuses.push(r.status);
    }
  }
  poller.postMessage('stop');
  const times = await health;
  await poller.terminate();
  const sorted = [...times].sort((a, b) => a - b);
  const q = (p: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(1);
  const epochAfter = ((await (await fetch(`${origin}/v1/cluster`)).json()) as { epoch: number }).epoch;
  console.log(`${rounds} rounds of ${bodies.length} hostile bodies: statuses ${[...new Set(statuses)].join(',')}`);
  console.log(`/health: ${times.length} polls, median ${q(0.5)} ms, p99 ${q(0.99)} ms, worst ${q(1)} ms (goal: within 100 ms throughout)`);
  console.log(`workers declared lost: ${(log.match(/worker lost/g) ?? []).length}; plan epoch ${epochBefore} → ${epochAfter}`);
} finally {
  up.kill('SIGTERM');
  await new Promise((r) => up.once('exit', r));
  fs.rmSync(home, { recursive: true, force: true });
}
