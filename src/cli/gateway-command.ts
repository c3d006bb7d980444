// `hearth gateway`: the OpenAI API + scheduler + coordinator, joining an existing nats-server.

import { randomBytes } from 'node:crypto';
import { NatsBus } from '../bus/index.ts';
import { connectPatiently } from '../trust/index.ts';
import { shellWord, startGateway } from './gateway.ts';
import { SERVE_OPTIONS, parseArgs, prepareServe, untilSignal } from './serve-common.ts';

export const usage = `hearth gateway --nats nats://HOST:PORT --token T [--model DIR|ORG/NAME] [--port P] [--host H]
               [--api-key KEY] [--quant int4] [--config FILE]
Serves the OpenAI API and plans the model across the workers that join the same nats-server.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: SERVE_OPTIONS });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const { cfg, log, modelDir, notice } = await prepareServe(values, 'hearth-gateway');
  if (cfg.cluster.natsUrl === null) {
    process.stderr.write(`hearth gateway: --nats nats://HOST:PORT (or HEARTH_NATS_URL) is required; \`hearth up\` starts one for you\n`);
    return 2;
  }
  const token = cfg.cluster.token ?? randomBytes(24).toString('hex');
  // A nats-server that is not up yet (started alongside, e.g. by systemd or compose) is waited for.
  const natsUrl = cfg.cluster.natsUrl;
  const bus = await connectPatiently(() => NatsBus.connect({ servers: natsUrl, token, name: 'hearth-gateway', log }), log);
  const command = `HEARTH_TOKEN=<token> ./hearth worker --join ${shellWord(cfg.cluster.natsUrl)} --cluster ${shellWord(cfg.cluster.name)}`;
  let gateway;
  try {
    gateway = await startGateway({ cfg, modelDir, bus, token, log, ...(notice !== undefined ? { notice } : {}), join: { command, note: null } });
  } catch (e) {
    await bus.close();
    throw e;
  }
  process.stdout.write(`hearth gateway: OpenAI API at ${gateway.origin}/v1; workers join with (in a hearth checkout):\n  ${command}\n`);
  const sig = await untilSignal();
  log.info({ sig }, 'shutting down');
  await gateway.close();
  await bus.close();
  return 0;
}
