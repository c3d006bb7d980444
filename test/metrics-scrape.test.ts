// /metrics: scraped over HTTP from a real fastify server, parsed by a strict Prometheus text
// format parser (v0.0.4: https://prometheus.io/docs/instrumenting/exposition_formats/), and the
// counters/histograms must move by exactly what the handles were given.
import t from 'tap';
import Fastify from 'fastify';
import { createMetrics, instrumentRequests, metricsRoute, type Metrics } from '../src/observability/index.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  type: string;
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, line: number): number {
  // Prometheus reads values with Go's strconv.ParseFloat, which takes NaN/Inf/Infinity in any
  // case (prom-client writes "Nan" for an event-loop lag not measured yet).
  if (/^\+?inf(inity)?$/i.test(s)) return Infinity;
  if (/^-inf(inity)?$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`line ${line}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Strict parser: throws on anything the exposition format does not allow. */
function parseProm(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('output must end with a newline');
  const lines = text.split('\n');
  lines.pop();
  const familyOf = (name: string): string | undefined => {
    if (families.has(name)) return name;
    const base = name.replace(/_(bucket|sum|count|total|created)$/, '');
    return families.has(base) ? base : undefined;
  };
  lines.forEach((l, idx) => {
    const n = idx + 1;
    if (l.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(l);
      if (m === null) return; // plain comment
      const [, kind, name = '', rest = ''] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${n}: bad metric name ${name}`);
      const fam = families.get(name) ?? { type: 'untyped', help: undefined, samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${n}: bad type ${rest}`);
        if (families.has(name) && fam.samples.length > 0) throw new Error(`line ${n}: TYPE after samples of ${name}`);
        fam.type = rest;
      } else {
        if (fam.help !== undefined) throw new Error(`line ${n}: second HELP for ${name}`);
        fam.help = rest;
      }
      families.set(name, fam);
      return;
    }
    if (l === '') return; // the format ignores empty lines (prom-client separates families with one)
    if (l.trim() === '') throw new Error(`line ${n}: whitespace-only line`);
    // name{labels} value [timestamp]
    const nm = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(l);
    if (nm === null) throw new Error(`line ${n}: no metric name in ${JSON.stringify(l)}`);
    const name = nm[1] as string;
    let i = name.length;
    const labels: Record<string, string> = {};
    if (l[i] === '{') {
      i++;
      while (l[i] !== '}') {
        const ln = /^([^=]*)="/.exec(l.slice(i));
        if (ln === null || !LABEL_NAME.test(ln[1] as string)) throw new Error(`line ${n}: bad label at ${i}`);
        i += ln[0].length;
        let v = '';
        for (;;) {
          const c = l[i];
          if (c === undefined) throw new Error(`line ${n}: unterminated label value`);
          if (c === '"') break;
          if (c === '\\') {
            const e = l[i + 1];
            if (e === 'n') v += '\n';
            else if (e === '\\' || e === '"') v += e;
            else throw new Error(`line ${n}: bad escape \\${e}`);
            i += 2;
          } else {
            v += c;
            i++;
          }
        }
        i++;
        if (ln[1] as string in labels) throw new Error(`line ${n}: duplicate label ${ln[1]}`);
        labels[ln[1] as string] = v;
        if (l[i] === ',') i++;
        else if (l[i] !== '}') throw new Error(`line ${n}: expected , or } at ${i}`);
      }
      i++;
    }
    if (l[i] !== ' ') throw new Error(`line ${n}: expected a space before the value`);
    const parts = l.slice(i + 1).split(' ');
    if (parts.length < 1 || parts.length > 2) throw new Error(`line ${n}: bad value/timestamp`);
    const value = parseValue(parts[0] as string, n);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`line ${n}: bad timestamp`);
    const famName = familyOf(name);
    if (famName === undefined) throw new Error(`line ${n}: sample ${name} before its # TYPE`);
    (families.get(famName) as Family).samples.push({ name, labels, value });
  });
  // Histogram invariants: cumulative buckets ending in +Inf equal to _count, per label set.
  for (const [name, fam] of families) {
    if (fam.type !== 'histogram') continue;
    const groups = new Map<string, Sample[]>();
    for (const s of fam.samples) {
      const { le, ...rest } = s.labels;
      const k = JSON.stringify(rest);
      if (s.name === `${name}_bucket` && le === undefined) throw new Error(`${name}: bucket without le`);
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const [k, ss] of groups) {
      const buckets = ss.filter((s) => s.name === `${name}_bucket`);
      for (let j = 1; j < buckets.length; j++) {
        if (parseValue(buckets[j]?.labels.le as string, 0) <= parseValue(buckets[j - 1]?.labels.le as string, 0)) throw new Error(`${name}${k}: le not increasing`);
        if ((buckets[j]?.value ?? 0) < (buckets[j - 1]?.value ?? 0)) throw new Error(`${name}${k}: buckets not cumulative`);
      }
      const inf = buckets.at(-1);
      const count = ss.find((s) => s.name === `${name}_count`);
      if (inf?.labels.le !== '+Inf' || count === undefined || inf.value !== count.value) throw new Error(`${name}${k}: +Inf bucket must equal _count`);
    }
  }
  return families;
}

function value(fams: Map<string, Family>, sample: string, labels: Record<string, string> = {}): number | undefined {
  const fam = fams.get(sample) ?? fams.get(sample.replace(/_(bucket|sum|count|total)$/, ''));
  const s = fam?.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

t.test('the parser is strict', async (t) => {
  t.doesNotThrow(() => parseProm('# HELP a_total x\n# TYPE a_total counter\na_total{l="q\\"\\\\\\n"} 1\n'));
  const bad = [
    'a 1\n', // no TYPE
    '# TYPE a counter\na 1', // no trailing newline
    '# TYPE a counter\na{l="x} 1\n', // unterminated
    '# TYPE a counter\na{l="x"} one\n', // bad value
    '# TYPE a counter\na{1l="x"} 1\n', // bad label name
    '# TYPE a counter\n  \na 1\n', // whitespace line
    '# TYPE a counter\na  1\n', // two spaces
    '# HELP a x\n# HELP a y\n# TYPE a counter\n', // second HELP
    '# TYPE a flubber\n', // bad type
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n', // +Inf != count
  ];
  for (const b of bad) t.throws(() => parseProm(b), JSON.stringify(b));
});

async function serve(metrics: Metrics): Promise<{ url: string; close: () => Promise<void> }> {
  const app = Fastify();
  instrumentRequests(app, metrics);
  metricsRoute(app, metrics);
  app.get('/things/:id', async (req, reply) => ((req.params as { id: string }).id === 'missing' ? reply.code(404).send({ error: 'no' }) : { ok: true }));
  const addr = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: addr, close: () => app.close() };
}

t.test('scrape parses and counters move after calls', async (t) => {
  let clock = 1_000_000;
  const metrics = createMetrics({ now: () => clock });
  const srv = await serve(metrics);
  t.teardown(srv.close);
  const scrape = async (): Promise<Map<string, Family>> => {
    const res = await fetch(`${srv.url}/metrics`);
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseProm(await res.text());
  };

  const before = await scrape();
  for (const name of ['hearth_requests_total', 'hearth_errors_total', 'hearth_time_to_first_token_seconds', 'hearth_inter_token_latency_seconds', 'hearth_generated_tokens_total', 'hearth_tokens_per_second', 'hearth_queue_depth', 'hearth_running_sequences', 'hearth_stage_step_seconds', 'hearth_hop_latency_seconds', 'hearth_kv_bytes', 'hearth_plan_epoch']) {
    t.ok(before.has(name), `${name} is exported`);
    t.ok((before.get(name)?.help ?? '').length > 5, `${name} has help text`);
  }
  t.equal(before.get('hearth_requests_total')?.type, 'counter');
  t.equal(before.get('hearth_stage_step_seconds')?.type, 'histogram');
  t.ok(before.has('hearth_process_resident_memory_bytes') || before.has('hearth_process_cpu_seconds_total'), 'process metrics present');
  const gen0 = value(before, 'hearth_generated_tokens_total') ?? NaN;
  t.equal(gen0, 0);

  for (const id of ['a', 'b', 'missing']) await (await fetch(`${srv.url}/things/${id}`)).arrayBuffer();
  metrics.errors.inc({ code: 'HEARTH_ERR_QUEUE_FULL' });
  metrics.errors.inc({ code: 'HEARTH_ERR_QUEUE_FULL' });
  metrics.errors.inc({ code: 'weird "code"\\ with\nnewline' });
  // One stream: first token after 120 ms, then two more 30 ms and 50 ms apart.
  const timer = metrics.streamTimer(clock);
  clock += 120;
  timer.token();
  clock += 30;
  timer.token();
  clock += 50;
  timer.token();
  metrics.queueDepth.set(3);
  metrics.runningSequences.inc();
  metrics.runningSequences.inc();
  metrics.runningSequences.dec();
  metrics.stageStep.observe({ node: 'n1', stage: 0 }, 0.004);
  metrics.stageStep.observe({ node: 'n1', stage: 0 }, 0.006);
  metrics.stageStep.observe({ node: 'n2', stage: 1 }, 0.02);
  metrics.hopLatency.observe(0.0007);
  metrics.kvBytes.set({ node: 'n1' }, 4096);
  metrics.kvBytes.set({ node: 'n2' }, 1024);
  metrics.kvBytes.remove({ node: 'n2' });
  metrics.planEpoch.set(7);

  const after = await scrape();
  t.equal(value(after, 'hearth_requests_total', { route: '/things/:id', status: '200' }), 2, 'route pattern label, 2 x 200');
  t.equal(value(after, 'hearth_requests_total', { route: '/things/:id', status: '404' }), 1);
  t.equal(value(after, 'hearth_requests_total', { route: '/metrics', status: '200' }), 1, 'the first scrape was counted');
  t.equal(value(after, 'hearth_errors_total', { code: 'HEARTH_ERR_QUEUE_FULL' }), 2);
  t.equal(value(after, 'hearth_errors_total', { code: 'weird "code"\\ with\nnewline' }), 1, 'label escaping round-trips');
  t.equal(value(after, 'hearth_time_to_first_token_seconds_count'), 1);
  t.ok(Math.abs((value(after, 'hearth_time_to_first_token_seconds_sum') ?? 0) - 0.12) < 1e-9, 'TTFT = 120 ms');
  t.equal(value(after, 'hearth_time_to_first_token_seconds_bucket', { le: '0.1' }), 0);
  t.equal(value(after, 'hearth_time_to_first_token_seconds_bucket', { le: '0.25' }), 1);
  t.equal(value(after, 'hearth_inter_token_latency_seconds_count'), 2);
  t.ok(Math.abs((value(after, 'hearth_inter_token_latency_seconds_sum') ?? 0) - 0.08) < 1e-9, 'ITL sum = 30 + 50 ms');
  t.equal(value(after, 'hearth_generated_tokens_total'), gen0 + 3);
  // 3 tokens inside the 10 s window: 9 whole seconds plus the elapsed fraction of this one.
  const frac = (clock / 1000) % 1;
  t.ok(Math.abs((value(after, 'hearth_tokens_per_second') ?? 0) - 3 / (9 + frac)) < 1e-9, 'tokens/s over the window');
  t.equal(value(after, 'hearth_queue_depth'), 3);
  t.equal(value(after, 'hearth_running_sequences'), 1);
  t.equal(value(after, 'hearth_stage_step_seconds_count', { node: 'n1', stage: '0' }), 2);
  t.equal(value(after, 'hearth_stage_step_seconds_bucket', { node: 'n1', stage: '0', le: '0.005' }), 1);
  t.equal(value(after, 'hearth_stage_step_seconds_count', { node: 'n2', stage: '1' }), 1);
  t.equal(value(after, 'hearth_hop_latency_seconds_count'), 1);
  t.equal(value(after, 'hearth_kv_bytes', { node: 'n1' }), 4096);
  t.equal(value(after, 'hearth_kv_bytes', { node: 'n2' }), undefined, 'removed series is gone');
  t.equal(value(after, 'hearth_plan_epoch'), 7);

  // The rate window forgets: 11 s later nothing was generated in the window.
  clock += 11_000;
  t.equal(metrics.tokensPerSecond.get(), 0);
});

t.test('disabled metrics: no-op handles, nothing exported', async (t) => {
  const m = createMetrics({ enabled: false });
  t.equal(m.enabled, false);
  m.requests.inc({ route: '/x', status: 200 });
  m.streamTimer().token();
  m.kvBytes.set({ node: 'a' }, 1);
  m.stageStep.observe({ node: 'a', stage: 0 }, 1);
  t.equal(parseProm(await m.scrape()).size, 0);
  t.equal(m.tokensPerSecond.get(), 0);
  // Two enabled registries side by side do not collide (no global registry).
  const a = createMetrics({ processMetrics: false });
  const b = createMetrics({ processMetrics: false });
  a.generatedTokens.inc(5);
  t.equal(value(parseProm(await b.scrape()), 'hearth_generated_tokens_total'), 0);
  t.equal(value(parseProm(await a.scrape()), 'hearth_generated_tokens_total'), 5);
});
