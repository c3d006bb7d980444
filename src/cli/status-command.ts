import { parseFlags as parseArgs } from './flags.ts';

export const usage = `hearth status [--url http://127.0.0.1:8080] [--api-key KEY] [--json]
Shows the cluster of a running gateway: plan epoch, each node's layer range, memory, state, tokens/s.`;

interface NodeView {
  id: string;
  name?: string;
  state?: string;
  range?: [number, number] | null;
  memory?: { offered?: number; weights?: number; total?: number; free?: number; kvBytes?: number };
  provider?: string;
  threads?: number;
  tokS?: number;
  msPerLayer?: number | null;
  linkMs?: number | null;
  idleReason?: string | null;
}

interface ForecastView {
  objective?: string;
  predictedTokS?: number;
  measuredTokS?: number | null;
}

const gb = (n: number | undefined): string => (n === undefined ? '-' : `${(n / 2 ** 30).toFixed(1)}G`);
const mb = (n: number | undefined): string => (n === undefined ? '-' : `${(n / 2 ** 20).toFixed(1)}M`);

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string', default: process.env['HEARTH_URL'] ?? 'http://127.0.0.1:8080' },
      'api-key': { type: 'string', default: process.env['HEARTH_API_KEY'] ?? '' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const headers: Record<string, string> = values['api-key'] === '' ? {} : { authorization: `Bearer ${values['api-key']}` };
  let res: Response;
  try {
    res = await fetch(new URL('/v1/cluster', values.url), { headers });
  } catch (e) {
    process.stderr.write(`hearth status: cannot reach ${values.url} (${(e as Error).message}); is \`hearth up\` running? pass --url\n`);
    return 1;
  }
  if (!res.ok) {
    process.stderr.write(`hearth status: ${values.url}/v1/cluster answered ${res.status}: ${await res.text()}\n`);
    return 1;
  }
  const body = (await res.json()) as { epoch?: number; model?: { id?: string; numLayers?: number }; nodes?: NodeView[]; forecast?: ForecastView | null };
  if (values.json) {
    process.stdout.write(JSON.stringify(body, null, 2) + '\n');
    return 0;
  }
  const nodes = body.nodes ?? [];
  process.stdout.write(`model ${body.model?.id ?? '?'} (${body.model?.numLayers ?? '?'} layers), plan epoch ${body.epoch ?? '?'}, ${nodes.length} node(s)\n`);
  // Memory columns are all within what the node offered: weights + KV + free = offered.
  const fc = body.forecast ?? null;
  if (fc !== null && typeof fc.predictedTokS === 'number') {
    const measured = typeof fc.measuredTokS === 'number' ? `measured ${fc.measuredTokS.toFixed(1)}` : 'not measured yet';
    process.stdout.write(`plan (${fc.objective ?? 'fastest'}) predicts ${fc.predictedTokS.toFixed(1)} tok/s for one stream; ${measured}\n`);
  }
  const rows = [['NODE', 'STATE', 'LAYERS', 'OFFERED', 'WEIGHTS', 'KV', 'FREE', 'PROVIDER', 'THREADS', 'TOK/S', 'MS/LAYER', 'LINK MS']];
  for (const n of nodes) {
    rows.push([
      n.name ?? n.id,
      n.state ?? '-',
      n.range ? `${n.range[0]}-${n.range[1] - 1}` : '-',
      gb(n.memory?.offered ?? n.memory?.total),
      mb(n.memory?.weights),
      mb(n.memory?.kvBytes),
      gb(n.memory?.free),
      n.provider ?? '-',
      String(n.threads ?? '-'),
      n.tokS === undefined ? '-' : n.tokS.toFixed(1),
      typeof n.msPerLayer === 'number' ? String(n.msPerLayer) : '-',
      typeof n.linkMs === 'number' ? n.linkMs.toFixed(2) : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ') + '\n');
  for (const n of nodes) if (typeof n.idleReason === 'string') process.stdout.write(`${n.idleReason}\n`);
  return 0;
}
