// Issue 19, "Must show" (first half): a rogue holding only the join token, on a live cluster
// under per-node credentials (as `hearth up` runs it: real nats-server with a join user, the real
// gateway with its TrustAuthority, two real worker processes that fetch their layers from the
// gateway with their own grants), runs every spoof of item 1 — `loaded{ok:false}` for an honest
// node, a `leave` in an honest node's name, a phantom announce, each both on its own subjects
// and on the honest node's — plus a bad-typed heartbeat (item 9) and a join flood (item 5),
// while 8 streams run through the openai SDK. Every stream ends with the text of an undisturbed
// run; the plan never changes (never includes the phantom, never drops an honest node); the
// flood's credentials are revoked, and a real worker that joins afterwards is admitted.
import t from 'tap';
import OpenAI from 'openai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { NatsBus, WIRE_VERSION, createUserNkey, encodeMessage, subjects } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { startGateway } from '../src/cli/gateway.ts';
import { loadConfig } from '../src/config/index.ts';
import { createLogger } from '../src/observability/index.ts';
import { GATEWAY_USER, JOIN_USER, TrustAuthority, joinForCredential } from '../src/trust/index.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing, spawnWorker, until } from './helpers/nats.ts';

const skip = natsMissing();
const C = 'rogue';
const STREAMS = 8;
const MAX_TOKENS = 48;
const FLOOD = 200;

/** One whole frame as the bus sends it (src/bus/framing.ts: [0x00] payload). */
function frame(msg: Record<string, unknown>): Uint8Array {
  const payload = encodeMessage({ v: WIRE_VERSION, ...msg } as never);
  const f = new Uint8Array(payload.byteLength + 1);
  f.set(payload, 1);
  return f;
}

t.test('a rogue with the join token spoofs membership and floods joins; 8 streams keep their text', { skip }, async (t) => {
  const dir = await tinyCheckpoint('qwen3');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'hearth-rogue-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const token = randomBytes(16).toString('hex');
  const gatewayPassword = randomBytes(24).toString('hex');
  const nats = await startNatsServer({ token, users: TrustAuthority.initialUsers(C, gatewayPassword, token) });
  t.teardown(() => nats.stop());
  let lines = '';
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines += chunk.toString(); if (lines.length > 4_000_000) lines = lines.slice(-2_000_000); cb(); } });
  const log = createLogger({ level: 'info', pretty: false, logPrompts: false }, { destination: sink, name: 'gateway' });
  const bus = await NatsBus.connect({ servers: nats.url, name: 'gateway', user: GATEWAY_USER, pass: gatewayPassword, log });
  const trust = new TrustAuthority({ bus, cluster: C, server: nats, gatewayPassword, joinPassword: token, log });
  trust.start();
  const cfg = loadConfig({ env: {}, flags: { host: '127.0.0.1', port: 0, cluster: C, 'server.ui': false, 'server.drainMs': 1000, 'cluster.plan': 'balanced', 'limits.maxConcurrentSequences': STREAMS } });
  const gateway = await startGateway({ cfg, modelDir: dir, bus, token, log, trust });
  t.teardown(async () => { await gateway.close(); trust.close(); await bus.close(); });
  const coord = gateway.pipeline.coordinator;

  // Two honest workers without the model: each fetches its own layers with its own grant.
  const worker = (name: string) => spawnWorker(t, ['--join', nats.url, '--cluster', C, '--name', name, '--cache', path.join(tmp, name), '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token });
  const workers = [worker('w1'), worker('w2')];
  const ready = (n: number) => coord.plan()?.live === true && gateway.pipeline.clusterSnapshot().nodes.filter((x) => x.state === 'ready').length === n;
  try {
    await until(() => ready(2) && (coord.plan()?.stages.length ?? 0) === 2, 120_000, 'a live two-stage plan');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${lines.slice(-3000)}\n${workers.map((w) => w.stderr().slice(-1500)).join('\n')}`);
  }
  const honest = coord.plan()!.stages.map((s) => s.node);
  const epoch = coord.epoch();

  const client = new OpenAI({ baseURL: `${gateway.origin}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
  const run = async (i: number): Promise<string> => {
    const s = await client.chat.completions.create({ model: 'tiny-qwen3', messages: [{ role: 'user', content: `Tell story number ${i}.` }], max_tokens: MAX_TOKENS, temperature: 0, stream: true });
    let text = '';
    for await (const chunk of s) text += chunk.choices[0]?.delta.content ?? '';
    return text;
  };
  const reference = await Promise.all(Array.from({ length: STREAMS }, (_, i) => run(i)));
  t.ok(reference.every((r) => r.length > 0), 'the undisturbed run: 8 texts');

  // Every plan the gateway announces from here on.
  const plans: string[][] = [];
  const unPlan = coord.onPlan((p) => { plans.push(p?.stages.map((s) => s.node) ?? []); });
  t.teardown(unPlan);

  // The rogue: buys a credential with the token, as a worker does, and never announces itself.
  const rogueId = `rogue-${randomBytes(3).toString('hex')}`;
  const seed = await joinForCredential({ servers: nats.url, token, cluster: C, id: rogueId, name: 'rogue', retryMs: 200 });
  if (seed === null) throw new Error('the rogue got no credential');
  const rogue: NatsConnection = await connect({ servers: nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) });
  t.teardown(() => rogue.close());
  const refusals: string[] = [];
  void (async () => { for await (const s of rogue.status()) if (s.type === 'error') refusals.push(String(s.error)); })();
  const joiner: NatsConnection = await connect({ servers: nats.url, user: JOIN_USER, pass: token });
  t.teardown(() => joiner.close());

  const streams = Array.from({ length: STREAMS }, (_, i) => run(i));
  const [victim, other] = honest as [string, string];
  const send = (subject: string, msg: Record<string, unknown>) => rogue.publish(subject, frame(msg));
  const phantom = { t: 'announce', id: 'phantom-1', name: 'phantom', memory: 2 ** 40, freeMemory: 2 ** 40, threads: 64, speed: 1e4, hasModel: true };
  for (let round = 0; round < 3; round++) {
    // In its own name's subjects, claiming another id: the gateway drops them.
    send(subjects.loaded(C, rogueId), { t: 'loaded', id: victim, epoch: coord.epoch(), ok: false, error: 'spoofed', weightBytes: 0 });
    send(subjects.leave(C, rogueId), { t: 'leave', id: other });
    send(subjects.announce(C, rogueId), phantom);
    // On the honest nodes' own subjects (and a phantom's): the server refuses the publish.
    send(subjects.loaded(C, victim), { t: 'loaded', id: victim, epoch: coord.epoch(), ok: false, error: 'spoofed', weightBytes: 0 });
    send(subjects.leave(C, other), { t: 'leave', id: other });
    send(subjects.announce(C, 'phantom-1'), phantom);
    // Item 9: a heartbeat whose tokS is a string, in its own name (the codec drops it).
    send(subjects.heartbeat(C, rogueId), { t: 'heartbeat', id: rogueId, epoch: 1, state: 'ready', kvBytes: 0, freeMemory: 0, tokS: 'x' });
    // The flood: join requests for fresh ids and keys, as fast as the connection takes them.
    for (let i = 0; i < FLOOD / 3; i++) {
      joiner.publish(subjects.join(C), frame({ t: 'join', id: `flood-${round}-${i}`, name: 'flood', nkey: createUserNkey().publicKey }));
    }
    await rogue.flush();
    await joiner.flush();
    await new Promise((r) => setTimeout(r, 300));
  }
  const texts = await Promise.all(streams);
  for (let i = 0; i < STREAMS; i++) t.equal(texts[i], reference[i], `stream ${i}: exactly the undisturbed text`);

  t.same(plans, [], 'no new plan while the rogue acted');
  t.equal(coord.epoch(), epoch, 'the epoch never changed');
  t.same(coord.plan()?.stages.map((s) => s.node), honest, 'both honest nodes hold their stages');
  t.ok(coord.plan()?.live, 'the plan serves');
  const states = Object.fromEntries(gateway.pipeline.clusterSnapshot().nodes.map((n) => [n.id, n.state]));
  t.same(states, { [victim]: 'ready', [other]: 'ready' }, 'the members are the honest nodes, both ready (no phantom, no rogue)');
  t.ok(workers.every((w) => w.proc.exitCode === null), 'no honest worker was told to leave');
  t.match(refusals.join(' | '), /permissions violation/i, 'the server refused the publishes in other names');
  if (process.env['HEARTH_TEST_DUMP'] !== undefined) (await import('node:fs')).writeFileSync(process.env['HEARTH_TEST_DUMP'], lines);
  t.match(lines, /another node's name/, 'the gateway logged the messages in another node\'s name');
  t.match(lines, /join rate limit/, 'the gateway logged the join rate limit');
  t.match(lines, /dropped a message: heartbeat: bad field tokS/, 'the bad-typed heartbeat was dropped at the codec and logged');

  // The flood's credentials do not stay: none announced, so each is revoked within seconds.
  const flooded = trust.admitted().filter((id) => id.startsWith('flood-')).length;
  t.ok(flooded < FLOOD / 4, `at most a burst plus the rate were admitted (${flooded} of ${FLOOD})`);
  await until(() => trust.admitted().every((id) => !id.startsWith('flood-') && id !== rogueId), 20_000, 'the unannounced credentials revoked');
  t.same(trust.admitted().sort(), [...honest].sort(), 'only the honest nodes hold credentials');

  // A real worker joining after the flood is admitted and becomes a member.
  const w3 = worker('w3');
  try {
    await until(() => gateway.pipeline.clusterSnapshot().nodes.some((n) => n.name === 'w3' && n.state !== 'lost'), 60_000, 'w3 to join');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${w3.stderr().slice(-2000)}\n${lines.slice(-2000)}`);
  }
  t.pass('a real worker joining after the flood was admitted');
  t.notOk(gateway.pipeline.clusterSnapshot().nodes.some((n) => n.id === 'phantom-1'), 'the phantom never became a member');
});
