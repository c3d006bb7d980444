// node --import tsx bench/memory-at-context.ts --model DIR [--contexts 128,2048,8192,16384,32768]
//   [--quant int4] [--threads 2] [--decode-tokens 8] [--prefill-chunk 128] [--json]
//
// Issue 25's memory goal, per context: peak RSS ≤ 1.3 × (weights + KV in use) + 120 MB. Each context
// runs in a process of its own (a peak is a high-water mark: one process per context is the only
// way a row is that context's alone), from a shard cache the first child fills (so no row carries
// the int4 build's transients). Per row: VmHWM (/proc/self/status) right after the load and at the
// end, the end's RSS split into anonymous and file-mapped pages, the weights as the engine counts
// them (weights + rotary tables), the KV in use (positions held × bytes per position), and the
// ratio against the goal's bound.
//
// A benchmark, not a test: it imports the product and is never imported by it.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    contexts: { type: 'string', default: '128,2048,8192,16384,32768' },
    quant: { type: 'string', default: 'int4' },
    threads: { type: 'string', default: '2' },
    'decode-tokens': { type: 'string', default: '8' },
    'prefill-chunk': { type: 'string', default: '128' },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});

const MiB = 2 ** 20;
/** The goal's fixed allowance (Node, onnxruntime, the thread pools). */
const FIXED = 120 * 1e6;

interface Row {
  context: number;
  /** VmHWM right after the stages loaded (no token run yet). */
  loadHwmBytes: number;
  /** VmHWM at the end of the context (prefill + decode), the row's peak. */
  peakBytes: number;
  /** VmRSS at the end, the KV still held. */
  rssBytes: number;
  /** Of it, anonymous memory and mapped files (RssAnon / RssFile): a mapped table's touched rows were file pages. */
  anonBytes: number;
  fileBytes: number;
  weightBytes: number;
  kvBytes: number;
  /** peak ÷ (weights + KV) */
  ratio: number;
  /** peak ÷ (1.3 × (weights + KV) + 120 MB): ≤ 1 meets the goal. */
  ofBound: number;
  prefillMs: number;
}

function procStatus(field: 'VmHWM' | 'VmRSS' | 'RssAnon' | 'RssFile'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

async function runChild(context: number): Promise<Row> {
  const { loadBenchEngines } = await import('../src/runtime/bench.ts');
  const { benchPromptIds } = await import('../src/runtime/bench-prompt.ts');
  const quant = values.quant === 'none' ? 'none' : 'int4';
  const { engines } = await loadBenchEngines({ dir: values.model as string, quant, stages: 1, threads: Number(values.threads) });
  const loadHwmBytes = procStatus('VmHWM');
  if (context === 0) {
    await Promise.all(engines.map((e) => e.close()));
    return { context, loadHwmBytes, peakBytes: loadHwmBytes, rssBytes: procStatus('VmRSS'), anonBytes: procStatus('RssAnon'), fileBytes: procStatus('RssFile'), weightBytes: 0, kvBytes: 0, ratio: 0, ofBound: 0, prefillMs: 0 };
  }
  const e = engines[0];
  if (e === undefined) throw new Error('no engine');
  const decode = Number(values['decode-tokens']);
  // Refused before a long prefill rather than at its first decode step (32768 + 8 on a 32k model).
  if (context + decode > e.config.maxPositions) throw new RangeError(`context ${context} + ${decode} decode tokens pass the model's ${e.config.maxPositions} positions (try ${e.config.maxPositions - decode})`);
  const chunk = Number(values['prefill-chunk']);
  const prompt = benchPromptIds(context, e.config.vocabSize);
  const t0 = performance.now();
  let logits: Float32Array | undefined;
  for (let pos = 0; pos < context; pos += chunk) {
    const n = Math.min(chunk, context - pos);
    logits = (await e.run([{ seq: 's', pos, n, tokens: prompt.subarray(pos, pos + n) }]))[0]?.logits;
  }
  const prefillMs = performance.now() - t0;
  const argmax = (x: Float32Array): number => x.reduce((b, v, i, a) => (v > (a[b] as number) ? i : b), 0);
  let next = argmax(logits as Float32Array);
  for (let i = 0; i < decode; i++) {
    logits = (await e.run([{ seq: 's', pos: context + i, n: 1, tokens: Int32Array.of(next) }]))[0]?.logits;
    next = argmax(logits as Float32Array);
  }
  const weightBytes = e.weightBytes();
  const kvBytes = e.kvBytes();
  const peakBytes = procStatus('VmHWM');
  const rssBytes = procStatus('VmRSS');
  const anonBytes = procStatus('RssAnon');
  const fileBytes = procStatus('RssFile');
  await e.close();
  const used = weightBytes + kvBytes;
  return { context, loadHwmBytes, peakBytes, rssBytes, anonBytes, fileBytes, weightBytes, kvBytes, ratio: peakBytes / used, ofBound: peakBytes / (1.3 * used + FIXED), prefillMs };
}

function spawnChild(context: number, env: NodeJS.ProcessEnv): Promise<Row> {
  const self = fileURLToPath(import.meta.url);
  const args = ['--import', 'tsx', self, '--child', String(context), '--model', values.model as string, '--quant', values.quant, '--threads', values.threads, '--decode-tokens', values['decode-tokens'], '--prefill-chunk', values['prefill-chunk']];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`context ${context}: ${stderr.trim().slice(-2000) || err.message}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as Row);
    });
  });
}

if (values.model === undefined) {
  process.stderr.write('usage: node --import tsx bench/memory-at-context.ts --model DIR [--contexts 128,2048,8192,16384,32768] [--quant int4] [--threads 2] [--json]\n');
  process.exit(2);
}
if (values.child !== undefined) {
  process.stdout.write(JSON.stringify(await runChild(Number(values.child))) + '\n');
  process.exit(0);
}

// A shard cache of this run's own, filled by a load-only child first.
const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-mem-shards-'));
process.on('exit', () => fs.rmSync(cache, { recursive: true, force: true }));
const env = { ...process.env, HEARTH_CACHE_DIR: cache };
await spawnChild(0, env);
const rows: Row[] = [];
for (const c of values.contexts.split(',').map((s) => Number(s.trim()))) {
  const r = await spawnChild(c, env);
  rows.push(r);
  if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stderr.write(`context ${c}: peak ${(r.peakBytes / MiB).toFixed(0)} MiB, ratio ${r.ratio.toFixed(2)}, of bound ${r.ofBound.toFixed(2)}\n`);
}
if (!values.json) {
  const head = ['context', 'load HWM MiB', 'peak MiB', 'RSS end MiB', 'anon / file MiB', 'weights MiB', 'KV MiB', 'peak ÷ (w+KV)', 'peak ÷ (1.3(w+KV)+120MB)', 'prefill s'];
  const cells = rows.map((r) => [String(r.context), (r.loadHwmBytes / MiB).toFixed(0), (r.peakBytes / MiB).toFixed(0), (r.rssBytes / MiB).toFixed(0), `${(r.anonBytes / MiB).toFixed(0)} / ${(r.fileBytes / MiB).toFixed(0)}`, (r.weightBytes / MiB).toFixed(0), (r.kvBytes / MiB).toFixed(0), r.ratio.toFixed(2), r.ofBound.toFixed(2), (r.prefillMs / 1000).toFixed(1)]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: readonly string[]): string => c.map((x, i) => x.padStart(w[i] as number)).join('  ');
  process.stdout.write([line(head), ...cells.map(line)].join('\n') + '\n');
}
