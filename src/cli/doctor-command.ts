// `hearth doctor`: checks a cluster's nodes and links over NATS and says what blocks a join or a
// plan, as something to do. Exit code 0 when nothing does, 1 when something does, 2 on usage.

import { existsSync, readFileSync } from 'node:fs';
import { clusterToken } from './token-file.ts';
import path from 'node:path';
import { parseFlags as parseArgs } from './flags.ts';
import { NatsBus } from '../bus/index.ts';
import { runDoctor, type DoctorReport } from '../cluster/doctor.ts';
import { modelCostsFromCheckpoint } from '../cluster/index.ts';
import { HearthError, isHearthError } from '../errors/index.ts';
import { openCheckpoint } from '../model/index.ts';
import { stateDir } from './state-dir.ts';

export const usage = `hearth doctor [--url http://127.0.0.1:8080] [--api-key KEY] [--json]
hearth doctor --join nats://HOST:PORT [--cluster NAME] [--token-file FILE] [--model DIR [--quant int4]] [--listen-ms MS] [--json]
Checks every node of a cluster: round trip, bandwidth of a 1 MB payload, clock skew,
version, ms per layer (measured once a node has served, else from its speed probe); with --model,
the plan the planner would choose and its predicted tok/s. Says what blocks a join or a plan, as
something to do. Without --join it asks the running gateway (GET /v1/cluster/doctor: the gateway
may speak to every node, also under per-node credentials). With --join it speaks NATS itself, for a
bus with the one cluster token (HEARTH_TOKEN, --token-file, or the one \`hearth up\` keeps).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      join: { type: 'string', default: '' },
      url: { type: 'string', default: process.env['HEARTH_URL'] ?? 'http://127.0.0.1:8080' },
      'api-key': { type: 'string', default: process.env['HEARTH_API_KEY'] ?? '' },
      cluster: { type: 'string', default: process.env['HEARTH_CLUSTER'] ?? 'default' },
      'token-file': { type: 'string' },
      model: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      'listen-ms': { type: 'string', default: '1500' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (values.join === '') return viaGateway(values.url, values['api-key'], values.json);
  let token = clusterToken(values['token-file']);
  const kept = path.join(stateDir(), 'cluster-token');
  if (token === '' && existsSync(kept)) token = readFileSync(kept, 'utf8').trim();
  const quant = values.quant;
  if (quant !== 'none' && quant !== 'int4') throw new HearthError('HEARTH_ERR_USAGE', [`--quant must be none or int4; got "${quant}"`]);
  const listenMs = Number(values['listen-ms']);
  if (!Number.isFinite(listenMs) || listenMs < 0) throw new HearthError('HEARTH_ERR_USAGE', [`--listen-ms must be a number of milliseconds; got "${values['listen-ms']}"`]);
  let cost;
  if (values.model !== undefined) {
    const ckpt = openCheckpoint(values.model);
    cost = modelCostsFromCheckpoint(ckpt, { quant, kvTokens: 4096 });
    ckpt.close();
  }

  let bus: NatsBus;
  try {
    try {
      bus = await NatsBus.connect({ servers: values.join, name: 'hearth-doctor', ...(token !== '' ? { token } : {}) });
    } catch (e) {
      // `hearth up`'s bus takes the token only for joining (issue 14): on this machine, the
      // gateway's credential it left in the state dir (0600) gives the doctor the gateway's view.
      const cred = path.join(stateDir(), 'gateway-credential');
      if (!existsSync(cred)) throw e;
      const c = JSON.parse(readFileSync(cred, 'utf8')) as { user: string; password: string; caFile?: string };
      bus = await NatsBus.connect({ servers: values.join, name: 'hearth-doctor', user: c.user, pass: c.password, ...(c.caFile !== undefined ? { tls: { caFile: c.caFile } } : {}) });
    }
  } catch (e) {
    const msg = isHearthError(e) ? e.message : (e as Error).message;
    const what = isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED')
      ? 'the server refused the token: use the one `hearth up` printed (HEARTH_TOKEN=… or --token-file FILE)'
      : `nothing answers at ${values.join}: start \`hearth up\` (or your nats-server), or pass the address of its join line with --join`;
    if (values.json) process.stdout.write(JSON.stringify({ problems: [what], error: msg }, null, 2) + '\n');
    else process.stderr.write(`hearth doctor: ${msg}\n  to do: ${what}\n`);
    return 1;
  }
  let report: DoctorReport;
  try {
    report = await runDoctor({ bus, cluster: values.cluster, url: values.join, listenMs, ...(cost !== undefined ? { cost, modelName: path.basename(values.model ?? '') } : {}) });
  } finally {
    await bus.close();
  }
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report, values.join) + '\n');
  return report.problems.length === 0 ? 0 : 1;
}

/** Asks the running gateway to check its cluster (it holds the credentials to reach every node). */
async function viaGateway(url: string, apiKey: string, json: boolean): Promise<number> {
  const headers: Record<string, string> = apiKey === '' ? {} : { authorization: `Bearer ${apiKey}` };
  let res: Response;
  try {
    res = await fetch(new URL('/v1/cluster/doctor', url), { headers });
  } catch (e) {
    const what = `no gateway answers at ${url}: start \`hearth up\`, pass its address with --url, or check a bus directly with --join nats://HOST:PORT`;
    if (json) process.stdout.write(JSON.stringify({ nodes: [], problems: [what], error: (e as Error).message }, null, 2) + '\n');
    else process.stderr.write(`hearth doctor: cannot reach ${url} (${(e as Error).message})\n  to do: ${what}\n`);
    return 1;
  }
  if (!res.ok) {
    const what = res.status === 401 ? 'the gateway wants an API key: pass --api-key KEY (or HEARTH_API_KEY)' : `the gateway answered ${res.status}: ${(await res.text()).slice(0, 300)}`;
    process.stderr.write(`hearth doctor: ${url}/v1/cluster/doctor failed\n  to do: ${what}\n`);
    return 1;
  }
  const report = (await res.json()) as DoctorReport;
  process.stdout.write(json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report, url) + '\n');
  return report.problems.length === 0 ? 0 : 1;
}

export function formatDoctor(r: DoctorReport, url: string): string {
  const f = (x: number | null, d = 2): string => (x === null ? '-' : x.toFixed(d));
  const lines = [`hearth doctor: ${url}, cluster "${r.cluster ?? '?'}", ${r.nodes.length} node(s); ${url.startsWith('http') ? 'the gateway' : 'this machine'} runs hearth ${r.version ?? '?'}`];
  const rows = [['NODE', 'VERSION', 'STATE', 'LAYERS', 'RTT ms', '1MB MB/s', 'SKEW ms', 'MS/LAYER', 'THREADS', 'SPEED', 'MEMORY']];
  for (const n of r.nodes) {
    rows.push([
      n.name, n.version ?? '-', n.state ?? '-', n.range === null ? '-' : `${n.range[0]}-${n.range[1] - 1}`,
      f(n.rttMs), f(n.bandwidthMBs, 0), f(n.skewMs, 1),
      n.msPerLayer === null ? '-' : `${n.msPerLayer}${n.msPerLayerBasis === 'probe' ? ' (probe)' : ''}`,
      String(n.threads), String(n.speed), `${(n.memory / 2 ** 30).toFixed(1)}G`,
    ]);
  }
  if (r.nodes.length > 0) {
    const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) lines.push(row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
  }
  if (r.serving != null) {
    const sv = r.serving;
    lines.push(`plan serving: ${sv.summary ?? `predicts ${sv.predictedTokS.toFixed(1)} tok/s for one stream; measured ${sv.measuredTokS === null ? 'not yet' : sv.measuredTokS.toFixed(1)}`}`);
  }
  if (r.predicted !== null && r.predicted !== undefined) {
    lines.push(`plan for this model: ${r.predicted.stages.join(' → ')}, predicts ${r.predicted.tokS.toFixed(1)} tok/s for one stream`);
    for (const why of r.predicted.idle) lines.push(`  ${why}`);
  }
  if (r.problems.length === 0) lines.push('ok: nothing blocks a join or a plan');
  else for (const p of r.problems) lines.push(`to do: ${p}`);
  return lines.join('\n');
}
