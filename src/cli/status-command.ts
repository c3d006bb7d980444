import { parseFlags as parseArgs } from './flags.ts';

export const usage = `hearth status [--url http://127.0.0.1:8080] [--api-key KEY] [--json]
Shows the cluster of a running gateway: plan epoch, each node's layer range, memory, state, tokens/s.`;

/** What /v1/cluster says, as far as this command is concerned: nothing in it is trusted to have
 *  the type it should (each field is checked where it is printed). */
interface NodeView {
  id?: unknown;
  name?: unknown;
  state?: unknown;
  range?: unknown[] | null;
  memory?: { offered?: unknown; weights?: unknown; total?: unknown; free?: unknown; kvBytes?: unknown } | null;
  provider?: unknown;
  threads?: unknown;
  tokS?: unknown;
  msPerLayer?: unknown;
  linkMs?: unknown;
  idleReason?: unknown;
}

interface ForecastView {
  objective?: unknown;
  predictedTokS?: unknown;
  measuredTokS?: unknown;
  summary?: unknown;
}

// What a node announced reaches this terminal (issue 19): every field is type-checked here (a
// gateway of another version, or a node's own words, may not be what we expect) and text is
// shown with control and format characters escaped, so no escape sequence reaches the terminal.
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const gb = (n: unknown): string => (isNum(n) ? `${(n / 2 ** 30).toFixed(1)}G` : '-');
const mb = (n: unknown): string => (isNum(n) ? `${(n / 2 ** 20).toFixed(1)}M` : '-');
const fixed = (n: unknown, digits: number): string => (isNum(n) ? n.toFixed(digits) : '-');

/** Text safe to print: control/format characters as \u escapes, at most `max` characters. */
export function terminalSafe(v: unknown, max = 80): string {
  if (typeof v !== 'string') return isNum(v) ? String(v) : '-';
  const cut = v.length > max ? `${v.slice(0, max)}…` : v;
  return cut.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

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
  const body = (await res.json()) as { epoch?: unknown; model?: { id?: unknown; numLayers?: unknown }; nodes?: unknown; forecast?: ForecastView | null };
  if (values.json) {
    process.stdout.write(JSON.stringify(body, null, 2) + '\n');
    return 0;
  }
  const nodes = (Array.isArray(body.nodes) ? body.nodes : []).filter((n): n is NodeView => typeof n === 'object' && n !== null);
  process.stdout.write(`model ${terminalSafe(body.model?.id ?? '?')} (${terminalSafe(body.model?.numLayers ?? '?')} layers), plan epoch ${terminalSafe(body.epoch ?? '?')}, ${nodes.length} node(s)\n`);
  // Memory columns are all within what the node offered: weights + KV + free = offered.
  const fc = body.forecast ?? null;
  if (fc !== null && isNum(fc.predictedTokS)) {
    // The gateway's own sentence (cluster/figures.ts): the page and `doctor` show the same one.
    const said = typeof fc.summary === 'string' ? terminalSafe(fc.summary, 400)
      : `predicts ${fc.predictedTokS.toFixed(1)} tok/s for one stream; ${isNum(fc.measuredTokS) ? `measured ${fc.measuredTokS.toFixed(1)}` : 'not measured yet'}`;
    process.stdout.write(`plan (${terminalSafe(fc.objective ?? 'fastest')}): ${said}\n`);
  }
  const rows = [['NODE', 'STATE', 'LAYERS', 'OFFERED', 'WEIGHTS', 'KV', 'FREE', 'PROVIDER', 'THREADS', 'TOK/S', 'MS/LAYER', 'LINK MS']];
  for (const n of nodes) {
    const mem = typeof n.memory === 'object' && n.memory !== null ? n.memory : {};
    const range = Array.isArray(n.range) && isNum(n.range[0]) && isNum(n.range[1]) ? `${n.range[0]}-${n.range[1] - 1}` : '-';
    rows.push([
      terminalSafe(typeof n.name === 'string' ? n.name : n.id, 40),
      terminalSafe(n.state ?? '-', 16),
      range,
      gb(mem.offered ?? mem.total),
      mb(mem.weights),
      mb(mem.kvBytes),
      gb(mem.free),
      terminalSafe(n.provider ?? '-', 16),
      isNum(n.threads) ? String(n.threads) : '-',
      fixed(n.tokS, 1),
      isNum(n.msPerLayer) ? String(n.msPerLayer) : '-',
      fixed(n.linkMs, 2),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ') + '\n');
  for (const n of nodes) if (typeof n.idleReason === 'string') process.stdout.write(`${terminalSafe(n.idleReason, 400)}\n`);
  return 0;
}
