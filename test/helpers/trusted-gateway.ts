// A gateway as `hearth up` runs it with per-node credentials: nats-server with the join user and
// the gateway's own, the TrustAuthority admitting nodes, startGateway with the given config flags
// (cluster "test"); its log kept for assertions. Workers join with `token`.
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { NatsBus } from '../../src/bus/index.ts';
import { startGateway } from '../../src/cli/gateway.ts';
import { startNatsServer } from '../../src/cluster/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { GATEWAY_USER, TrustAuthority } from '../../src/trust/index.ts';

export async function startTrustedGateway(t: Test, modelDir: string, flags: Record<string, unknown>) {
  const token = randomBytes(16).toString('hex');
  const gatewayPassword = randomBytes(16).toString('hex');
  const nats = await startNatsServer({ token, users: TrustAuthority.initialUsers('test', gatewayPassword, token) });
  t.teardown(() => nats.stop());
  const bus = await NatsBus.connect({ servers: nats.url, name: 'test-gateway', user: GATEWAY_USER, pass: gatewayPassword });
  const cfg = loadConfig({ env: {}, flags: { host: '127.0.0.1', port: 0, cluster: 'test', 'server.ui': false, 'server.drainMs': 1000, ...flags } });
  let lines = '';
  const log = createLogger({ level: 'info', pretty: false, logPrompts: false }, { destination: { write: (s: string) => { lines += s; return true; } } as unknown as NodeJS.WritableStream, name: 'gateway' });
  const trust = new TrustAuthority({ bus, cluster: 'test', server: nats, gatewayPassword, joinPassword: token, log });
  trust.start();
  const gateway = await startGateway({ cfg, modelDir, bus, token, log, trust });
  t.teardown(async () => { await gateway.close(); trust.close(); await bus.close(); });
  return { nats, token, trust, gateway, logs: (): string => lines };
}
