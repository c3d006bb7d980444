// A worker's join that lands while nats-server reloads its users (for another node's admission)
// is refused for a moment, as the join user and with the token alike. It must try again, not take
// the refusal for "this server has no join user" and exit (CI: of two workers started together, the
// second exited "rejected the credential (check --token)"). Here the join user is missing at first
// and added by a reload a moment later, as a reload that lands late looks to the worker.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { NatsBus } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { GATEWAY_USER, JOIN_USER, TrustAuthority, joinForCredential } from '../src/trust/index.ts';
import { natsMissing } from './helpers/nats.ts';

const C = 'reload';

t.test('a join refused during a reload is tried again and admitted', { skip: natsMissing() }, async (t) => {
  const token = randomBytes(16).toString('hex');
  const gatewayPassword = randomBytes(16).toString('hex');
  const all = TrustAuthority.initialUsers(C, gatewayPassword, token);
  const nats = await startNatsServer({ token, users: all.filter((u) => u.user !== JOIN_USER) });
  t.teardown(() => nats.stop());
  const bus = await NatsBus.connect({ servers: nats.url, name: 'gateway', user: GATEWAY_USER, pass: gatewayPassword });
  t.teardown(() => bus.close());
  const authority = new TrustAuthority({ bus, cluster: C, server: nats, gatewayPassword, joinPassword: token });
  authority.start();
  t.teardown(() => authority.close());

  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (_o: object, msg?: string) => { warnings.push(msg ?? ''); } };
  const joining = joinForCredential({ servers: nats.url, token, cluster: C, id: 'w1', name: 'w1', retryMs: 200, log });
  await new Promise((r) => setTimeout(r, 300));
  await nats.setUsers(all);
  const seed = await joining;
  t.ok(seed?.startsWith('SU'), `admitted with a credential of its own (got ${seed === null ? 'null: "no join user", and the worker connects with the token and is refused' : 'a seed'})`);
  t.ok(warnings.some((w) => /refused the join user and the token for now/.test(w)), 'the retry is logged');
  t.same(authority.admitted(), ['w1']);
});
