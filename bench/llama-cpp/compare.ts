// npm run compare -- --model DIR [--contexts 128,2048,8192] [--decode-tokens 32] [--threads 2] [--json]
//
// hearth against llama.cpp on one checkpoint, in one run: the checkpoint is written to a Q4_0 GGUF
// (src/hf-to-gguf.ts, as llama-quantize would make it), then for each context length llama.cpp
// (node-llama-cpp's prebuilt CPU build) and hearth (`hearth bench --quant int4`) each run once in a
// child process of their own, one after the other, on the same prompt token ids and decode length.
// Both pick greedy tokens, so on the same weights they should mostly agree (Q4_0 and hearth's int4
// round differently; random-weight models have many near-ties). The host is shared and noisy:
// ratios from one interleaved run are what count, not the absolute figures.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { convertCheckpoint } from './src/hf-to-gguf.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const HEARTH = path.resolve(here, '../../bin/hearth.js');

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    contexts: { type: 'string', default: '128,2048,8192' },
    'decode-tokens': { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    gguf: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
if (values.model === undefined) {
  process.stderr.write('usage: npm run compare -- --model DIR [--contexts 128,2048,8192] [--decode-tokens 32] [--threads 2] [--gguf FILE] [--json]\n');
  process.exit(2);
}
const model = path.resolve(values.model);
const contexts = values.contexts.split(',').map((s) => Number(s.trim()));
const decode = values['decode-tokens'];
const threads = values.threads;
const log = (s: string): void => void process.stderr.write(s + '\n');

interface Row {
  context: number;
  prefillTokS: number;
  decodeTokS: number;
  ttftMs: number;
  prefillCpuMsPerToken: number;
  decodeCpuMsPerToken: number;
  loadMs: number;
  loadColdMs?: number;
  rssPeakBytes: number;
  weightBytes: number;
  kvBytes: number;
  prefillChunk: number;
  greedyIds: number[];
}

/** A child run, tried twice: on a shared host a run can die of something passing (a node_modules being reinstalled). */
async function child(args: readonly string[], cwd: string): Promise<Row> {
  try {
    return await childOnce(args, cwd);
  } catch (e) {
    log(`  retrying once: ${(e as Error).message.split('\n')[0]}`);
    await new Promise((r) => setTimeout(r, 5000));
    return childOnce(args, cwd);
  }
}

function childOnce(args: readonly string[], cwd: string): Promise<Row> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd, maxBuffer: 64 << 20, env: { ...process.env, HEARTH_CACHE_DIR: hearthCache } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${path.basename(args.find((a) => a.endsWith('.ts') || a.endsWith('.js')) ?? '')} failed: ${stderr.trim().slice(-2000) || err.message}`));
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Row);
      } catch {
        reject(new Error(`no JSON result in: ${stdout.slice(-500)}`));
      }
    });
  });
}

/** The writer's sources, so a changed writer never reuses a stale GGUF. */
function writerVersion(): string {
  const src = path.join(here, 'src');
  return createHash('sha256').update(fs.readdirSync(src).sort().map((f) => fs.readFileSync(path.join(src, f), 'utf8')).join('\n')).digest('hex');
}

// A GGUF per checkpoint version, kept between runs (writing the 0.5B one takes a while).
const st = fs.statSync(path.join(model, 'config.json'));
const weights = fs.readdirSync(model).filter((f) => f.endsWith('.safetensors')).map((f) => fs.statSync(path.join(model, f)));
const tag = createHash('sha256').update(JSON.stringify([writerVersion(), st.mtimeMs, ...weights.map((w) => [w.size, w.mtimeMs])])).digest('hex').slice(0, 12);
const gguf = values.gguf ?? path.join(os.tmpdir(), 'hearth-bench-gguf', `${path.basename(model)}-${tag}-q4_0.gguf`);
if (!fs.existsSync(gguf)) {
  fs.mkdirSync(path.dirname(gguf), { recursive: true });
  log(`writing ${gguf}…`);
  const t0 = performance.now();
  const tmp = `${gguf}.${process.pid}.tmp`;
  convertCheckpoint(model, tmp, 'q4_0');
  fs.renameSync(tmp, gguf);
  log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// hearth runs after the first load with --single-load from a shard cache of this run's own (the
// first one measures cold and cached loads in a cache folder of its own), not the user's.
const hearthCache = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-compare-shards-'));
process.on('exit', () => fs.rmSync(hearthCache, { recursive: true, force: true }));

const runLlama = (context: number): Promise<Row> =>
  child(['--import', 'tsx', path.join(here, 'llama-run.ts'), '--gguf', gguf, '--context', String(context), '--decode-tokens', decode, '--threads', threads], here);
const runHearth = (context: number, first: boolean): Promise<Row> =>
  child(
    [HEARTH, 'bench', '--model', model, '--json', '--quant', 'int4', '--contexts', String(context), '--decode-tokens', decode, '--threads', threads, ...(first ? [] : ['--single-load'])],
    here,
  );

interface Pair {
  context: number;
  llama: Row;
  hearth: Row;
  /** Leading greedy tokens both picked alike, of those compared. */
  greedyAgree: { leading: number; same: number; of: number };
  /** The host's 1-minute load average before and after the pair (2 cores here: above ~2, the two sides wait for cores). */
  loadAvg: [number, number];
}

const pairs: Pair[] = [];
for (const [i, context] of contexts.entries()) {
  // Alternate who goes first, so a slow spell on the host does not always land on one side.
  let llama: Row;
  let hearth: Row;
  const load0 = os.loadavg()[0] ?? 0;
  if (i % 2 === 0) {
    log(`context ${context}: llama.cpp…`);
    llama = await runLlama(context);
    log(`context ${context}: hearth…`);
    hearth = await runHearth(context, i === 0);
  } else {
    log(`context ${context}: hearth…`);
    hearth = await runHearth(context, i === 0);
    log(`context ${context}: llama.cpp…`);
    llama = await runLlama(context);
  }
  const of = Math.min(llama.greedyIds.length, hearth.greedyIds.length);
  let leading = 0;
  while (leading < of && llama.greedyIds[leading] === hearth.greedyIds[leading]) leading++;
  let same = 0;
  for (let j = 0; j < of; j++) if (llama.greedyIds[j] === hearth.greedyIds[j]) same++;
  pairs.push({ context, llama, hearth, greedyAgree: { leading, same, of }, loadAvg: [load0, os.loadavg()[0] ?? 0] });
  log(`  decode ${llama.decodeTokS.toFixed(1)} vs ${hearth.decodeTokS.toFixed(1)} tok/s, prefill ${llama.prefillTokS.toFixed(1)} vs ${hearth.prefillTokS.toFixed(1)} tok/s`);
  // The raw pair on stderr too, so a long run that fails later still leaves its finished rows.
  log(JSON.stringify(pairs[pairs.length - 1]));
}

const ratio = (h: number, l: number): number => h / l;
const summary = pairs.map((p) => ({
  context: p.context,
  decodeTokS: { llama: p.llama.decodeTokS, hearth: p.hearth.decodeTokS, ratio: ratio(p.hearth.decodeTokS, p.llama.decodeTokS) },
  prefillTokS: { llama: p.llama.prefillTokS, hearth: p.hearth.prefillTokS, ratio: ratio(p.hearth.prefillTokS, p.llama.prefillTokS) },
  ttftMs: { llama: p.llama.ttftMs, hearth: p.hearth.ttftMs, ratio: ratio(p.hearth.ttftMs, p.llama.ttftMs) },
  prefillCpuMsPerToken: { llama: p.llama.prefillCpuMsPerToken, hearth: p.hearth.prefillCpuMsPerToken, ratio: ratio(p.hearth.prefillCpuMsPerToken, p.llama.prefillCpuMsPerToken) },
  decodeCpuMsPerToken: { llama: p.llama.decodeCpuMsPerToken, hearth: p.hearth.decodeCpuMsPerToken, ratio: ratio(p.hearth.decodeCpuMsPerToken, p.llama.decodeCpuMsPerToken) },
  rssPeakBytes: { llama: p.llama.rssPeakBytes, hearth: p.hearth.rssPeakBytes, ratio: ratio(p.hearth.rssPeakBytes, p.llama.rssPeakBytes) },
  greedyAgree: p.greedyAgree,
  loadAvg: p.loadAvg,
  llama: p.llama,
  hearth: p.hearth,
}));

// Load: the first pair's (llama.cpp's first load; hearth's cold load in an empty shard cache, then
// a load from that cache). Later hearth runs load from the run's own cache and are not reported.
const first = pairs[0];
const load = first && {
  llama: first.llama.loadMs,
  hearthCold: first.hearth.loadColdMs ?? NaN,
  hearthCached: first.hearth.loadMs,
  ratioCold: (first.hearth.loadColdMs ?? NaN) / first.llama.loadMs,
  ratioCached: first.hearth.loadMs / first.llama.loadMs,
};

if (values.json) {
  process.stdout.write(JSON.stringify({ model, gguf, threads: Number(threads), decodeTokens: Number(decode), load, contexts: summary }, null, 2) + '\n');
} else {
  const rows: string[][] = [['context', 'metric', 'llama.cpp', 'hearth', 'hearth ÷ llama.cpp']];
  const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
  for (const s of summary) {
    const c = String(s.context);
    rows.push([c, 'decode tok/s', s.decodeTokS.llama.toFixed(1), s.decodeTokS.hearth.toFixed(1), s.decodeTokS.ratio.toFixed(2)]);
    rows.push([c, 'prefill tok/s', s.prefillTokS.llama.toFixed(1), s.prefillTokS.hearth.toFixed(1), s.prefillTokS.ratio.toFixed(2)]);
    rows.push([c, 'TTFT ms', s.ttftMs.llama.toFixed(0), s.ttftMs.hearth.toFixed(0), s.ttftMs.ratio.toFixed(2)]);
    rows.push([c, 'prefill CPU ms/tok', s.prefillCpuMsPerToken.llama.toFixed(2), s.prefillCpuMsPerToken.hearth.toFixed(2), s.prefillCpuMsPerToken.ratio.toFixed(2)]);
    rows.push([c, 'decode CPU ms/tok', s.decodeCpuMsPerToken.llama.toFixed(1), s.decodeCpuMsPerToken.hearth.toFixed(1), s.decodeCpuMsPerToken.ratio.toFixed(2)]);
    rows.push([c, 'RSS peak MiB', mib(s.rssPeakBytes.llama), mib(s.rssPeakBytes.hearth), s.rssPeakBytes.ratio.toFixed(2)]);
    rows.push([c, 'greedy agree', '', `${s.greedyAgree.leading} leading, ${s.greedyAgree.same}/${s.greedyAgree.of}`, '']);
    rows.push([c, 'host load avg', '', `${s.loadAvg[0].toFixed(1)} → ${s.loadAvg[1].toFixed(1)}`, '']);
  }
  if (load) {
    rows.push(['', 'load ms, cold', load.llama.toFixed(0), load.hearthCold.toFixed(0), load.ratioCold.toFixed(2)]);
    rows.push(['', 'load ms, cached', '', load.hearthCached.toFixed(0), load.ratioCached.toFixed(2)]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((x, i) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  process.stdout.write(
    `${fmt(rows[0]!)}\n${rows.slice(1).map(fmt).join('\n')}\n\n` +
      `llama.cpp: ${gguf} (Q4_0, embedding Q8_0), ${threads} threads, prefill batch ${pairs[0]?.llama.prefillChunk ?? '?'}; ` +
      `hearth: int4, ${threads} threads, prefill chunk ${pairs[0]?.hearth.prefillChunk ?? '?'}; ${decode} decode tokens after each prompt. ` +
      `tok/s: ratio > 1 = hearth faster; ms and MiB: ratio < 1 = hearth better.\n`,
  );
}
