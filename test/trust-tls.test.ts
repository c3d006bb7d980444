// Issue 14: TLS on the bus with a CA of the cluster's own, and a join line that pins it. A worker
// given only the pin (--ca-sha256) and the token joins over TLS and gets its credential; a wrong
// pin (another cluster, or a man in the middle) is refused before the token is sent; a client
// without TLS is refused by the server.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { NatsBus } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { GATEWAY_USER, JOIN_USER, TrustAuthority, ensureClusterTls, fetchPinnedCa, fingerprintOf } from '../src/trust/index.ts';
import { natsMissing, spawnWorker, until } from './helpers/nats.ts';

const skip = natsMissing();

t.test('TLS with a pinned cluster CA', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tls = ensureClusterTls(path.join(dir, 'tls'), ['127.0.0.1', 'localhost']);
  t.match(tls.caSha256, /^[0-9a-f]{64}$/, 'the pin is the CA certificate\'s SHA-256');
  t.equal(ensureClusterTls(path.join(dir, 'tls'), ['localhost', '127.0.0.1']).caSha256, tls.caSha256, 'the CA is kept: the pin survives a restart');

  const token = `tok-${Math.random().toString(36).slice(2)}-0123456789`;
  const nats = await startNatsServer({ token, users: TrustAuthority.initialUsers('tls', 'gw-pass-0123456789', token), tls: { certFile: tls.certFile, keyFile: tls.keyFile } });
  t.teardown(() => nats.stop());
  const gw = await NatsBus.connect({ servers: nats.url, name: 'gateway', user: GATEWAY_USER, pass: 'gw-pass-0123456789', tls: { caFile: tls.caFile } });
  t.teardown(() => gw.close());
  const authority = new TrustAuthority({ bus: gw, cluster: 'tls', server: nats, gatewayPassword: 'gw-pass-0123456789', joinPassword: token });
  authority.start();
  t.teardown(() => authority.close());

  const pem = await fetchPinnedCa(nats.url, tls.caSha256);
  t.equal(fingerprintOf(pem), tls.caSha256, 'the pinned CA is found in the chain the server presents');
  await t.rejects(connect({ servers: nats.url, user: JOIN_USER, pass: token, maxReconnectAttempts: 0, timeout: 3000 }), 'a client without TLS is refused');

  const cache = path.join(dir, 'cache', 'stages');
  const w = spawnWorker(t, ['--join', nats.url, '--cluster', 'tls', '--name', 'pinned', '--ca-sha256', tls.caSha256, '--cache', cache, '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token });
  await until(() => authority.admitted().some((id) => id.startsWith('pinned-')), 60_000, 'the pinned worker admitted over TLS');
  t.pass('the worker joined over TLS with only the pin and the token');
  w.kill('SIGTERM');
  await w.exited;

  const wrong = spawnWorker(t, ['--join', nats.url, '--cluster', 'tls', '--name', 'wrong', '--ca-sha256', 'ab'.repeat(32), '--cache', cache, '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token });
  t.equal(await wrong.exited, 3, 'a wrong pin: the worker stops before it sends the token');
  t.match(wrong.stderr(), /not the cluster the join line names/);
  t.notOk(authority.admitted().some((id) => id.startsWith('wrong-')), 'and is not admitted');
});
