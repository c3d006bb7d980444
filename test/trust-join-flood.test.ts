// Issue 19 item 5: a join flood (the token alone buys a credential) is rate-limited, the flood's
// credentials are revoked when their nodes do not announce, and a real worker that joins after
// it is admitted. A real nats-server with the join user; a plain NATS client floods.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { NatsBus, WIRE_VERSION, createUserNkey, encodeMessage, subjects } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { GATEWAY_USER, JOIN_USER, TrustAuthority, joinForCredential } from '../src/trust/index.ts';
import { natsMissing, until } from './helpers/nats.ts';

const C = 'flood';

function frame(msg: Record<string, unknown>): Uint8Array {
  const payload = encodeMessage({ v: WIRE_VERSION, ...msg } as never);
  const f = new Uint8Array(payload.byteLength + 1);
  f.set(payload, 1);
  return f;
}

t.test('a join flood is rate-limited and its credentials do not stay', { skip: natsMissing() }, async (t) => {
  const token = randomBytes(16).toString('hex');
  const gatewayPassword = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token, users: TrustAuthority.initialUsers(C, gatewayPassword, token) });
  t.teardown(() => nats.stop());
  const bus = await NatsBus.connect({ servers: nats.url, name: 'gateway', user: GATEWAY_USER, pass: gatewayPassword });
  t.teardown(() => bus.close());
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (_o: object, msg?: string) => { warnings.push(msg ?? ''); } };
  // A small cap too, so that without the revocation the flood would fill it for good.
  const authority = new TrustAuthority({ bus, cluster: C, server: nats, gatewayPassword, joinPassword: token, log, maxNodes: 8, announceWithinMs: 1500 });
  authority.start();
  t.teardown(() => authority.close());

  const flood = await connect({ servers: nats.url, user: JOIN_USER, pass: token });
  t.teardown(() => flood.close());
  for (let i = 0; i < 100; i++) flood.publish(subjects.join(C), frame({ t: 'join', id: `flood-${i}`, name: 'flood', nkey: createUserNkey().publicKey }));
  await flood.flush();
  await until(() => warnings.some((w) => /join rate limit/.test(w)), 5000, 'the rate limit to be logged');
  await new Promise((r) => setTimeout(r, 300));
  const admitted = authority.admitted().length;
  t.ok(admitted >= 1 && admitted <= 6, `a burst was admitted, not the flood (${admitted} of 100)`);

  // A node that announces keeps its credential; the flood's (which never announce) lose theirs.
  const seed = await joinForCredential({ servers: nats.url, token, cluster: C, id: 'honest', name: 'honest', retryMs: 200 });
  t.ok(seed?.startsWith('SU'), 'a real worker is admitted after the flood');
  const node = await NatsBus.connect({ servers: nats.url, name: 'honest', nkeySeed: seed! });
  t.teardown(() => node.close());
  node.publish(subjects.announce(C, 'honest'), { t: 'announce', id: 'honest', name: 'honest', memory: 1, freeMemory: 1, threads: 1, speed: 1, hasModel: false });
  await node.flush();
  await until(() => authority.admitted().every((id) => !id.startsWith('flood-')), 10_000, 'the flood\'s credentials revoked');
  t.same(authority.admitted(), ['honest'], 'only the node that announced holds a credential');
  t.ok(warnings.some((w) => /did not announce within 1500 ms/.test(w)), 'the revocation is logged');

  // With the flood gone, the cap is free again: more real workers get in.
  for (let i = 0; i < 3; i++) {
    const s = await joinForCredential({ servers: nats.url, token, cluster: C, id: `later-${i}`, name: 'later', retryMs: 200, timeoutMs: 10_000 });
    t.ok(s?.startsWith('SU'), `later worker ${i} admitted`);
  }
});
