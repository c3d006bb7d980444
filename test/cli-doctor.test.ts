// `hearth doctor` against a real nats-server and real workers: per node round trip, bandwidth of
// a 1 MB payload, clock skew, version, ms per layer; a far node (simulated link delay) and a
// missing gateway are said as things to do; a wrong token is told apart from a dead address; and
// through a running gateway, which holds the credentials to reach every node.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { runCli } from './helpers/cli.ts';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing, repoRoot, spawnWorker, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

t.test('doctor: nodes, links, and what to do', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-doctor-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 128, numLayers: 4, vocabSize: 300, tokenizer: false, seed: 3 });
  const nats = await withNats(t);
  const near = spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'doc', '--name', 'near', '--model', model, '--threads', '1', '--speed', '8', '--memory', '1G']);
  spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'doc', '--name', 'far', '--model', model, '--threads', '1', '--speed', '8', '--memory', '1G', '--hop-delay-ms', '40']);
  await until(() => near.stderr().includes('waiting for an assignment'), 30_000, 'the workers on the bus');

  const home = mkdtempSync(path.join(os.tmpdir(), 'hearth-doctor-home-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const r = await runCli(['doctor', '--join', nats.url, '--cluster', 'doc', '--model', model, '--json', '--listen-ms', '1200'], { HEARTH_TOKEN: nats.token, HEARTH_HOME: home });
  t.equal(r.code, 1, `problems found → exit 1 (stderr: ${r.stderr.slice(0, 300)})`);
  const rep = JSON.parse(r.stdout) as { version: string; nodes: { name: string; version: string; rttMs: number; bandwidthMBs: number; skewMs: number; msPerLayer: number | null }[]; problems: string[]; predicted: { stages: string[]; idle: string[] } | null };
  const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  t.same(rep.nodes.map((n) => n.name), ['far', 'near'], 'both workers found');
  for (const n of rep.nodes) {
    t.equal(n.version, version, `${n.name}: reports its version`);
    t.ok(n.bandwidthMBs > 0, `${n.name}: 1 MB payload at ${n.bandwidthMBs} MB/s`);
    t.ok(Math.abs(n.skewMs) < 500, `${n.name}: clock skew ${n.skewMs} ms (same machine)`);
    t.ok(n.msPerLayer !== null && n.msPerLayer > 0, `${n.name}: ${n.msPerLayer} ms per layer (from its probe)`);
  }
  const far = rep.nodes.find((n) => n.name === 'far');
  const nearN = rep.nodes.find((n) => n.name === 'near');
  t.ok(far !== undefined && far.rttMs >= 40, `far: round trip ${far?.rttMs} ms includes its 40 ms link`);
  t.ok(nearN !== undefined && nearN.rttMs < 40, `near: round trip ${nearN?.rttMs} ms`);
  t.ok(rep.problems.some((p) => /^node far is [\d.]+ ms away \(round trip\)/.test(p)), 'the far node is a thing to fix');
  t.ok(rep.problems.some((p) => /^no gateway has assigned layers to any worker: start the gateway/.test(p)), 'no gateway: says to start one');
  t.same(rep.predicted?.stages, ['near [0,4)'], 'the plan for the model uses the near node');
  t.match(rep.predicted?.idle[0] ?? '', /^node far left out: the plan with it predicts/);

  const text = await runCli(['doctor', '--join', nats.url, '--cluster', 'doc', '--listen-ms', '1200'], { HEARTH_TOKEN: nats.token, HEARTH_HOME: home });
  t.match(text.stdout, /NODE\s+VERSION\s+STATE\s+LAYERS\s+RTT ms\s+1MB MB\/s\s+SKEW ms/, 'a table per node');
  t.match(text.stdout, /to do: no gateway has assigned layers/);

  const bad = await runCli(['doctor', '--join', nats.url, '--cluster', 'doc'], { HEARTH_TOKEN: 'not-the-token-at-all', HEARTH_HOME: home });
  t.equal(bad.code, 1);
  t.match(bad.stderr, /to do: the server refused the token/);
  const none = await runCli(['doctor', '--join', 'nats://127.0.0.1:1', '--cluster', 'doc'], { HEARTH_TOKEN: nats.token, HEARTH_HOME: home });
  t.equal(none.code, 1);
  t.match(none.stderr, /to do: nothing answers at nats:\/\/127\.0\.0\.1:1/);
});

t.test('doctor through the gateway (GET /v1/cluster/doctor): it may reach every node', { skip }, async (t) => {
  const dir = await tinyCheckpoint('llama');
  const c = await startCluster(t, dir, { workers: 2 });
  const r = await runCli(['doctor', '--url', c.origin, '--json']);
  const rep = JSON.parse(r.stdout) as { nodes: { name: string; state: string; rttMs: number; bandwidthMBs: number }[]; problems: string[]; predicted: { stages: string[] } | null };
  t.same(rep.problems, [], 'nothing blocks a join or a plan');
  t.equal(r.code, 0, 'exit 0');
  t.same(rep.nodes.map((n) => n.name).sort(), ['w1', 'w2'], 'both workers, reached by the gateway');
  t.ok(rep.nodes.every((n) => n.rttMs > 0 && n.bandwidthMBs > 0), 'round trip and bandwidth per node');
  t.ok((rep.predicted?.stages.length ?? 0) >= 1, `the plan for the served model: ${rep.predicted?.stages.join(' → ')}`);
  const text = await runCli(['doctor', '--url', c.origin]);
  t.match(text.stdout, /ok: nothing blocks a join or a plan/);
  const none = await runCli(['doctor', '--url', 'http://127.0.0.1:1']);
  t.equal(none.code, 1);
  t.match(none.stderr, /to do: no gateway answers at http:\/\/127\.0\.0\.1:1/);
});
