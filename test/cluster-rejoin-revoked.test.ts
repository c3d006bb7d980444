// Issue 20 item 4: what a worker does when its credential goes. Forgotten (lost for a minute, e.g. a
// laptop that slept), the worker joins again with the token it kept and gets a new credential by
// itself. Distrusted (its work failed a spot check), the gateway refuses that re-join and the
// worker exits 3 after one try, never looping. Real nats-server with per-node credentials, the
// gateway's TrustAuthority, a real `hearth worker` process.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { NatsBus } from '../src/bus/index.ts';
import { subjects } from '../src/bus/contract.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { GATEWAY_USER, TrustAuthority } from '../src/trust/index.ts';
import { natsMissing, spawnWorker, until } from './helpers/nats.ts';

const skip = natsMissing();

t.test('forgotten: rejoins with the token; distrusted: refused, exits 3 after one try', { skip }, async (t) => {
  const token = randomBytes(16).toString('hex');
  const gatewayPassword = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token, users: TrustAuthority.initialUsers('test', gatewayPassword, token) });
  t.teardown(() => nats.stop());
  const bus = await NatsBus.connect({ servers: nats.url, name: 'test-gateway', user: GATEWAY_USER, pass: gatewayPassword });
  t.teardown(() => bus.close());
  const trust = new TrustAuthority({ bus, cluster: 'test', server: nats, gatewayPassword, joinPassword: token });
  trust.start();
  t.teardown(() => trust.close());
  const joins: number[] = [];
  bus.subscribe(subjects.join('test'), (m) => { if (m.t === 'join' && m.id.startsWith('rw-')) joins.push(Date.now()); });

  const w = spawnWorker(t, ['--join', nats.url, '--cluster', 'test', '--name', 'rw', '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token, HEARTH_LOG_PRETTY: 'false' });
  const logs = (): string => w.stderr().slice(-3000);
  const admittedId = (): string | undefined => trust.admitted().find((id) => id.startsWith('rw-'));
  await until(() => admittedId() !== undefined && w.stderr().includes('waiting for an assignment'), 30_000, `the worker admitted\n${logs()}`);
  const id = admittedId() as string;
  t.equal(joins.length, 1, 'one join to get in');

  trust.revoke(id, 'forgotten');
  await until(() => w.stderr().includes('admitted again by the gateway'), 30_000, `the forgotten worker to join again\n${logs()}`);
  await until(() => trust.isAdmitted(id), 10_000, 'its new credential');
  t.match(w.stderr(), /joining again with the cluster token/, 'forgotten: the worker joined again with its token');
  t.equal(w.proc.exitCode, null, 'and is still running');
  t.equal(joins.length, 2, 'with one join request');
  // The new credential works: the worker announces itself over it (the authority's check that an
  // admitted node announces within 5 s would revoke it otherwise).
  await new Promise((r) => setTimeout(r, 6000));
  t.ok(trust.isAdmitted(id), 'still admitted after the announce deadline: it announced over the new credential');

  const before = joins.length;
  trust.revoke(id, 'distrusted');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([w.exited, new Promise((r) => { timer = setTimeout(() => r('still running'), 30_000); })]);
  clearTimeout(timer);
  t.equal(code, 3, `distrusted: the worker exits 3\n${code === 3 ? '' : logs()}`);
  t.match(w.stderr(), /the gateway refused to admit this node again \(distrusted/, 'saying the gateway refused it as distrusted');
  t.equal(joins.length - before, 1, 'after one re-join, not a loop of them');
  t.notOk(trust.isAdmitted(id), 'and it holds no credential');
});
