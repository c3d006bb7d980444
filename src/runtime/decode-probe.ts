// This device's decode speed as the planner needs it, before it has served: milliseconds per MB of
// int4 weights that onnxruntime's MatMulNBits streams for one token, on the threads a stage gets.
//
// Why not the JS matmul probe alone (worker/speed-probe.ts): it times compute on 256 KB that sits
// in cache, and turning its GFLOP/s into ms per MB took a constant fitted on the 0.5B shape; a 3B
// stage streams ~850 MB from memory each token, so the planner's figure before serving was 22-38%
// too fast there (issue 20). This probe runs the very kernel decode runs, at accuracy_level 4, over
// an MLP-shaped chain of four weights (~54 MB) larger than a last-level cache of 32 MB, so what it
// times is the same mix of int8 compute and memory traffic a stage's layers are.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { DT, GraphBuilder, MS_DOMAIN } from '../model/onnx/graph.ts';
import { int4MatrixBytes } from '../model/index.ts';

/** The chain: hidden → inter → hidden, twice (a 3B layer's MLP shape). */
const HIDDEN = 3072;
const INTER = 8192;
const BLOCK = 128;

export interface DecodeProbe {
  /** ms per MB (1e6 bytes) of int4 weights as built, one token: the median of the timed runs. */
  readonly msPerMb: number;
  /** The same from wall-clock time alone (what contention with other processes inflates). */
  readonly wallMsPerMb: number;
  /** MB of weights the chain streams per run. */
  readonly mb: number;
}

function filled(n: number, seed: number, f: (x: number) => number): Uint8Array | Float32Array {
  // Deterministic, cheap and not constant (a constant page could be deduplicated or compressed).
  let s = seed >>> 0;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = f(s >>> 24);
  }
  return out;
}

function chain(): { model: Uint8Array; externalData: { path: string; data: Uint8Array }[]; bytes: number } {
  const g = new GraphBuilder();
  let x = g.input('x', DT.float, [1, HIDDEN]);
  let bytes = 0;
  const dims: [number, number][] = [[HIDDEN, INTER], [INTER, HIDDEN], [HIDDEN, INTER], [INTER, HIDDEN]];
  dims.forEach(([k, n], i) => {
    const blocks = k / BLOCK;
    const packed = filled(n * blocks * (BLOCK / 2), 17 + i, (b) => b) as Uint8Array;
    // Scales ~1/sqrt(k) keep the activations finite through the chain (int8 quantization of a NaN
    // would time a different path).
    const scales = new Float32Array(n * blocks).fill(0.25 / Math.sqrt(k));
    x = g.op('MatMulNBits', [x, g.init(`w${i}`, DT.uint8, [n, blocks, BLOCK / 2], packed), g.init(`s${i}`, DT.float, [n * blocks], scales)],
      { K: k, N: n, bits: 4, block_size: BLOCK, accuracy_level: 4 }, MS_DOMAIN);
    bytes += int4MatrixBytes(n, k, BLOCK);
  });
  g.node('Identity', [x], ['y']);
  g.output('y', DT.float, [1, HIDDEN]);
  const { model, externalData } = g.finish('decode-probe');
  return { model, externalData: externalData.map((f) => ({ path: f.path, data: f.data })), bytes };
}

/** Times the chain on `threads` intra-op threads (no spinning: stages share cores), `runs` times
 *  spread over ~`spreadMs`, and keeps the fastest run: a device's speed is what it reaches when
 *  nothing else runs, and devices started together (or a gateway hashing beside a worker) would
 *  otherwise each time the other's load. ~2.5 s in all. */
export async function probeDecode(threads: number, runs = 20, spreadMs = 2000): Promise<DecodeProbe> {
  const c = chain();
  const session = await ort.InferenceSession.create(c.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: Math.max(1, threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    externalData: c.externalData,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  } as ort.InferenceSession.SessionOptions);
  try {
    const feeds = { x: new ort.Tensor('float32', new Float32Array(HIDDEN).map((_, i) => ((i % 7) - 3) / 3), [1, HIDDEN]) };
    for (let i = 0; i < 2; i++) await session.run(feeds); // first runs allocate
    let best = Number.POSITIVE_INFINITY;
    let bestWall = Number.POSITIVE_INFINITY;
    const n = Math.max(1, threads);
    for (let i = 0; i < runs; i++) {
      // Random gaps, so that two probes started at once do not stay in step.
      await new Promise((r) => setTimeout(r, Math.random() * (2 * spreadMs) / runs));
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      const wall = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpu = process.cpuUsage(c0);
      // The time on a core, per thread: another process taking turns on the same cores (a
      // gateway hashing the checkpoint beside a worker that starts) stretches the wall time of
      // every run but not this. Never above the wall time (threads that idled at a barrier).
      best = Math.min(best, Math.min(wall, (cpu.user + cpu.system) / 1000 / n));
      bestWall = Math.min(bestWall, wall);
    }
    const mb = c.bytes / 1e6;
    return { msPerMb: best / mb, wallMsPerMb: bestWall / mb, mb };
  } finally {
    await session.release();
  }
}

/** probeDecode in a child process of its own (~0.5 s more), so that nothing it allocated stays in
 *  this process: a worker's peak RSS is bounded against its weights + KV (issue 20), and glibc keeps
 *  freed buffers of a few MB in the heap, where later allocations may not reuse them. */
export async function probeDecodeApart(threads: number): Promise<DecodeProbe> {
  // node -e: register tsx (hearth runs its .ts sources), then import the child's entry (as
  // weights/shard-serve.ts starts its build process).
  const entry = new URL('./decode-probe-child.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Promise<DecodeProbe>((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', boot], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, HEARTH_DECODE_PROBE_THREADS: String(threads) },
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      try {
        const r = JSON.parse(out.trim()) as DecodeProbe;
        if (!(r.msPerMb > 0)) throw new Error('no figure');
        resolve(r);
      } catch {
        reject(new Error(`the decode probe exited with ${signal ?? `code ${code}`} and no figure`));
      }
    });
  });
}

/** How long a probe's figure is reused by a worker restarted on the same device. */
const PROBE_REUSE_MS = 7 * 24 * 3600 * 1000;

interface SavedProbe {
  readonly threads: number;
  readonly cpu: string;
  readonly cores: number;
  readonly at: number;
  readonly probe: DecodeProbe;
}

/** probeDecodeApart, its figure kept in `dir` (the worker's cache folder) and reused for a week by a
 *  worker restarted there with the same threads on the same CPU: a warm restart of a cluster to
 *  /ready must stay within seconds (issue 20: 15 s), and the probe costs ~3 s of it. Once a node
 *  has served, the planner goes by its measured steps anyway. */
export async function probeDecodeSaved(threads: number, dir: string): Promise<DecodeProbe> {
  const file = path.join(dir, 'decode-probe.json');
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const cores = os.availableParallelism();
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as SavedProbe;
    if (s.threads === threads && s.cpu === cpu && s.cores === cores && Date.now() - s.at < PROBE_REUSE_MS && s.probe.msPerMb > 0) return s.probe;
  } catch {
    // none yet, or unreadable: probe
  }
  const probe = await probeDecodeApart(threads);
  try {
    mkdirSync(dir, { recursive: true });
    const saved: SavedProbe = { threads, cpu, cores, at: Date.now(), probe };
    writeFileSync(`${file}.tmp`, JSON.stringify(saved));
    renameSync(`${file}.tmp`, file);
  } catch {
    // a read-only cache folder: the next start probes again
  }
  return probe;
}
