// The gateway's side of "a layer range is quantized once per cluster and fetched as int4" (issue 20).
// The gateway holds the checkpoint and is trusted, so it builds each assigned stage once with the
// same builder a worker would run (prepareShardFiles, into the gateway's shard cache, in a child
// process: see shard-serve-child.ts) and serves the entry's files; workers fetch them instead of
// the bf16 tensors and load them as they are. Without this every node fetched 2 bytes a weight
// and quantized its range itself.
//
// - One build at a time (bounded memory: the builder streams weights to files, one matrix of
//   scratch), queued when an assignment is made; a worker asking for a stage moves it to the front.
// - Content-addressed: a stage's identity is its cache key (checkpoint digests, range, build
//   options, builderVersion()); a re-plan or a restart finds ranges already built in the cache.

import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Quant } from '../model/index.ts';
import type { KvDtype } from '../model/onnx/index.ts';
import { ShardCache } from '../runtime/shard-cache.ts';
import { SHARD_MANIFEST_VERSION, type ShardManifest, type ShardManifestFile } from './manifest-types.ts';
import type { ShardBuildJob, ShardBuildReply } from './shard-serve-child.ts';

export interface ShardBuildsOptions {
  readonly modelDir: string;
  readonly modelId: string;
  readonly quant: Quant;
  /** The gateway's shard cache (resolveShardCacheDir()). */
  readonly cacheDir: string;
  readonly int4Block: number;
  readonly kvDtype: KvDtype;
  readonly tieEmbeddings: boolean;
  readonly log?: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

export type ShardState =
  | { readonly status: 'queued' | 'building' }
  | { readonly status: 'ready'; readonly manifest: ShardManifest; readonly dir: string }
  | { readonly status: 'failed'; readonly error: string };

/** Small files a worker needs besides the shard (the bf16 path copies the same ones). */
const EXTRA_RE = /^[^./][^/]*\.(json|model|txt|jinja)$/;
const SKIPPED_EXTRAS = new Set(['model.safetensors.index.json']);

const rangeKey = (start: number, end: number): string => `${start}-${end}`;

export class ShardBuilds {
  readonly #o: ShardBuildsOptions;
  readonly #states = new Map<string, ShardState>();
  /** Ranges waiting to be built, next first. */
  #queue: [number, number][] = [];
  #running = false;
  #closed = false;
  #extras: ShardManifestFile[] | null = null;
  /** The build process running now, if any (killed on close). */
  #child: ChildProcess | null = null;
  /** Builds finished (ready or failed): tests and logs. */
  builds = 0;

  constructor(o: ShardBuildsOptions) {
    this.#o = o;
  }

  /** Queues [start, end) unless it is built, building or queued (a failed one is tried again). */
  want(start: number, end: number): void {
    if (this.#closed) return;
    const s = this.#states.get(rangeKey(start, end));
    if (s !== undefined && s.status !== 'failed') return;
    this.#states.set(rangeKey(start, end), { status: 'queued' });
    this.#queue.push([start, end]);
    this.#pump();
  }

  /** A worker waits for this range: build it next. */
  urgent(start: number, end: number): void {
    this.want(start, end);
    const i = this.#queue.findIndex(([s, e]) => s === start && e === end);
    if (i > 0) this.#queue.unshift(...this.#queue.splice(i, 1));
  }

  state(start: number, end: number): ShardState | null {
    return this.#states.get(rangeKey(start, end)) ?? null;
  }

  /** The ready stage whose entry has this key, if any. */
  byKey(key: string): { readonly manifest: ShardManifest; readonly dir: string } | null {
    for (const s of this.#states.values()) if (s.status === 'ready' && s.manifest.key === key) return s;
    return null;
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#child?.kill('SIGKILL');
  }

  #pump(): void {
    if (this.#running || this.#closed) return;
    const next = this.#queue.shift();
    if (next === undefined) return;
    const [start, end] = next;
    this.#running = true;
    this.#states.set(rangeKey(start, end), { status: 'building' });
    const t0 = Date.now();
    void this.#build(start, end).then(
      ({ peakRss, ...ready }) => {
        this.#states.set(rangeKey(start, end), ready);
        this.#o.log?.info({ range: [start, end], key: ready.manifest.key, ms: Date.now() - t0, bytes: ready.manifest.files.reduce((n, f) => n + f.size, 0), buildPeakRss: peakRss }, `${this.#o.quant} shard ready to serve`);
      },
      (e: unknown) => {
        const error = e instanceof Error ? e.message : String(e);
        this.#states.set(rangeKey(start, end), { status: 'failed', error });
        this.#o.log?.warn({ range: [start, end], err: error }, `could not build the ${this.#o.quant} shard; its worker fetches the tensors instead`);
      },
    ).finally(() => {
      this.builds += 1;
      this.#running = false;
      this.#pump();
    });
  }

  async #build(start: number, end: number): Promise<ShardState & { status: 'ready'; peakRss: number }> {
    const job: ShardBuildJob = { modelDir: this.#o.modelDir, start, end, quant: this.#o.quant, cacheDir: this.#o.cacheDir, int4Block: this.#o.int4Block, kvDtype: this.#o.kvDtype };
    const reply = await new Promise<ShardBuildReply>((resolve, reject) => {
      // node -e: register tsx (hearth runs its .ts sources), then import the child's entry. Not
      // --input-type=module: threads inherit it, and the hashing thread (hash-files.ts) is CommonJS.
      const entry = new URL('./shard-serve-child.ts', import.meta.url).href;
      const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
      const child = spawn(process.execPath, ['-e', boot], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        env: { ...process.env, HEARTH_SHARD_BUILD_JOB: JSON.stringify(job) },
      });
      this.#child = child;
      // Niced: the build may use every core (shard-serve-child.ts), the gateway's heartbeats and
      // API come first.
      try {
        if (child.pid !== undefined) os.setPriority(child.pid, 10);
      } catch {
        // not permitted here: the build still runs, at the gateway's priority
      }
      let got: ShardBuildReply | null = null;
      child.once('message', (m: ShardBuildReply) => { got = m; });
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        this.#child = null;
        if (got !== null) resolve(got);
        else reject(new Error(`the build process exited with ${signal ?? `code ${code}`}`));
      });
    });
    if (!reply.ok) throw new Error(reply.error);
    const cache = ShardCache.open(this.#o.cacheDir);
    const entry = cache.read(reply.key);
    if (entry === null) throw new Error(`entry ${reply.key} is not whole after its build`);
    if (Object.keys(entry.links).length > 0) throw new Error(`entry ${reply.key} refers to checkpoint files`);
    const manifest: ShardManifest = {
      version: SHARD_MANIFEST_VERSION, model: this.#o.modelId, start, end, quant: this.#o.quant, key: entry.key, parts: entry.parts,
      attention: entry.attention, weightBytes: entry.weightBytes, lookupBytes: entry.lookupBytes, tieEmbeddings: this.#o.tieEmbeddings,
      files: Object.entries(entry.files).map(([name, f]) => ({ name, size: f.size, sha256: f.sha256 })).sort((a, b) => (a.name < b.name ? -1 : 1)),
      extras: this.#extraFiles(),
    };
    return { status: 'ready', manifest, dir: cache.entryDir(entry.key), peakRss: reply.peakRss };
  }

  /** config.json, tokenizer, template: hashed once (they are small). */
  #extraFiles(): ShardManifestFile[] {
    if (this.#extras !== null) return this.#extras;
    const out: ShardManifestFile[] = [];
    for (const name of readdirSync(this.#o.modelDir).sort()) {
      if (!EXTRA_RE.test(name) || SKIPPED_EXTRAS.has(name)) continue;
      const abs = path.join(this.#o.modelDir, name);
      if (!statSync(abs).isFile()) continue;
      const body = readFileSync(abs);
      out.push({ name, size: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    }
    this.#extras = out;
    return out;
  }
}
