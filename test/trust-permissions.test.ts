// Issue 14, Must show (a)/(b): nats-server itself refuses what a node's credential does not
// cover. A rogue client gets a worker's credential the way a worker does (the join token buys
// it) and tries to read other subjects and to forge a result; a plain NATS client (not hearth's
// bus) so nothing of ours stands between it and the server.
import t from 'tap';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { NatsBus, WIRE_VERSION, subjects, encodeMessage } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { GATEWAY_USER, JOIN_USER, TrustAuthority, joinForCredential } from '../src/trust/index.ts';
import { natsMissing, until } from './helpers/nats.ts';

const skip = natsMissing();
const C = 'trust';
const GW = 'gw-test';

async function rogue(t: Tap, url: string, auth: { seed: string } | { user: string; pass: string }): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connect({
    servers: url, name: 'rogue',
    ...('seed' in auth ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(auth.seed)) } : { user: auth.user, pass: auth.pass }),
  });
  const errors: string[] = [];
  void (async () => { for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.error)); })();
  t.teardown(() => nc.close());
  return { nc, errors };
}
type Tap = { teardown(fn: () => unknown): void };

/** Subscribes and reports what came of it: the server's refusal, or the messages that arrived. */
function trySubscribe(nc: NatsConnection, subject: string): { got: string[]; err: () => string | null } {
  const got: string[] = [];
  let err: string | null = null;
  nc.subscribe(subject, { callback: (e, m) => { if (e !== null) err = e.message; else got.push(m.subject); } });
  return { got, err: () => err };
}

t.test('a worker credential (bought with the join token) covers only its own subjects', { skip }, async (t) => {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const gatewayPassword = `gw-${Math.random().toString(36).slice(2)}`;
  const nats = await startNatsServer({ token, users: TrustAuthority.initialUsers(C, gatewayPassword, token) });
  t.teardown(() => nats.stop());
  const gwBus = await NatsBus.connect({ servers: nats.url, name: 'gateway', user: GATEWAY_USER, pass: gatewayPassword });
  t.teardown(() => gwBus.close());
  const authority = new TrustAuthority({ bus: gwBus, cluster: C, server: nats, gatewayPassword, joinPassword: token, announceWithinMs: 600_000 });
  authority.start();
  t.teardown(() => authority.close());

  // Two nodes join the way `hearth worker` does; the plan is stage 0 = a, stage 1 = b.
  const seedA = await joinForCredential({ servers: nats.url, token, cluster: C, id: 'node-a', name: 'a', retryMs: 200 });
  const seedB = await joinForCredential({ servers: nats.url, token, cluster: C, id: 'node-b', name: 'b', retryMs: 200 });
  t.ok(seedA?.startsWith('SU') && seedB?.startsWith('SU'), 'each node holds its own nkey seed');
  t.same(authority.admitted().sort(), ['node-a', 'node-b']);
  await authority.authorize(GW, [{ node: 'node-a', start: 0, end: 2 }, { node: 'node-b', start: 2, end: 4 }]);

  // A wrong token buys nothing.
  await t.rejects(connect({ servers: nats.url, user: JOIN_USER, pass: 'wrong' }), 'a wrong token is refused at connect');

  const gw = await connect({ servers: nats.url, user: GATEWAY_USER, pass: gatewayPassword });
  t.teardown(() => gw.close());
  const results: string[] = [];
  gw.subscribe(subjects.result(C, GW), { callback: (_e, m) => { results.push(m.subject); } });
  const stage0Inputs: string[] = [];
  gw.subscribe(subjects.step(C, 'node-a'), { callback: (_e, m) => { stage0Inputs.push(m.subject); } });
  const stage1Inputs: string[] = [];
  gw.subscribe(subjects.step(C, 'node-b'), { callback: (_e, m) => { stage1Inputs.push(m.subject); } });
  await gw.flush();

  const { nc: r, errors } = await rogue(t, nats.url, { seed: seedA! });
  // (a) subscribe to other subjects: refused by the server.
  const everything = trySubscribe(r, '>');
  const other = trySubscribe(r, subjects.step(C, 'node-b'));
  const res = trySubscribe(r, subjects.result(C, GW));
  const own = trySubscribe(r, subjects.step(C, 'node-a'));
  await r.flush();
  await until(() => everything.err() !== null && other.err() !== null && res.err() !== null, 5000, 'the server to refuse the subscriptions');
  t.match(everything.err(), /permissions violation/i, `subscribe ">": ${everything.err()}`);
  t.match(other.err(), /permissions violation/i, `subscribe to stage 1's input: ${other.err()}`);
  t.match(res.err(), /permissions violation/i, `subscribe to the gateway's results: ${res.err()}`);
  t.equal(own.err(), null, 'its own input subject is allowed');
  // The gateway sends to both stages: the rogue sees only its own.
  gw.publish(subjects.step(C, 'node-b'), encodeMessage({ v: WIRE_VERSION, t: 'free', seqs: ['x'] }));
  gw.publish(subjects.step(C, 'node-a'), encodeMessage({ v: WIRE_VERSION, t: 'free', seqs: ['y'] }));
  await gw.flush();
  await until(() => own.got.length === 1, 5000, 'its own input');
  t.same([everything.got, other.got, res.got], [[], [], []], 'nothing of other subjects reached it');

  // (b) publish a result (and a prompt to stage 0): dropped by the server with an error.
  const forged = encodeMessage({ v: WIRE_VERSION, t: 'result', id: 'node-b', epoch: 1, seq: 's', stepId: 1, token: { token: 42 }, logits: null, error: null, sentAt: 0, hopMs: [], stageMs: [] });
  r.publish(subjects.result(C, GW), forged);
  r.publish(subjects.step(C, 'node-a'), forged);
  // Positive control: its one allowed edge (stage 0 → stage 1) does arrive, so the test can tell.
  r.publish(subjects.step(C, 'node-b'), forged);
  await r.flush();
  await until(() => stage1Inputs.length === 2, 5000, 'the allowed publish');
  await until(() => errors.filter((e) => /publish/i.test(e)).length >= 2, 5000, 'the server to refuse the publishes');
  await new Promise((res) => setTimeout(res, 200));
  t.same(results, [], 'the forged result never reached the gateway');
  t.equal(stage0Inputs.length, 1, 'the forged prompt never reached stage 0 (only the gateway\'s own step did)');
  t.match(errors.join(' | '), new RegExp(`publish to "${subjects.result(C, GW).replace(/\./g, '\\.')}"`, 'i'), `server said: ${errors.join(' | ')}`);

  // The last stage may publish results, and the next step to stage 0 (issue 10's two-hop path).
  const { nc: last } = await rogue(t, nats.url, { seed: seedB! });
  last.publish(subjects.result(C, GW), forged);
  await last.flush();
  await until(() => results.length === 1, 5000, 'the last stage\'s result');
  t.pass('the last stage publishes results');

  // The token alone: can ask for a credential, nothing else.
  const { nc: j, errors: jerr } = await rogue(t, nats.url, { user: JOIN_USER, pass: token });
  const jall = trySubscribe(j, '>');
  j.publish(subjects.result(C, GW), forged);
  await j.flush();
  await until(() => jall.err() !== null && jerr.length > 0, 5000, 'refusals for the token holder');
  t.match(jall.err(), /permissions violation/i, 'the token cannot read the bus');
  await new Promise((res) => setTimeout(res, 200));
  t.equal(results.length, 1, 'the token cannot forge results');

  // A node that leaves loses its credential: the server closes its connection and refuses it.
  authority.revoke('node-a', 'left');
  await until(() => r.isClosed(), 10_000, 'the revoked connection to be closed');
  await t.rejects(connect({ servers: nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seedA!)), maxReconnectAttempts: 0 }), 'the revoked credential is refused');
  t.same(authority.admitted(), ['node-b']);
});
