// Starts a real hearth for end-to-end tests. With `hearth up` present it runs
// `node bin/hearth.js up --model DIR --port 0 --workers N` as a child process (nats-server, gateway
// and worker processes: the path users run), reads the URL it prints and waits for /ready. Without
// it (early in the project) it serves the same checkpoint in-process: the real tokenizer, template
// and scheduler over a LocalPipeline of real shard engines. Either way nothing is mocked.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Tap {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

export interface HearthOptions {
  /** Worker processes (stages); default 2. */
  readonly workers?: number;
  /** Preset family of the generated checkpoint (default qwen3: the real Qwen3 tokenizer + template). */
  readonly family?: 'qwen3' | 'qwen2' | 'llama' | 'mistral';
  /** Serve this checkpoint instead of a generated one. */
  readonly modelDir?: string;
  /** Force the in-process server even when `hearth up` exists. */
  readonly inProcess?: boolean;
  /** API limits for the in-process server. */
  readonly limits?: Partial<{ bodyBytes: number; maxTokensDefault: number; maxQueue: number; maxConcurrent: number }>;
}

export interface RunningHearth {
  /** e.g. http://127.0.0.1:PORT/v1 (what OpenAI clients take as baseURL). */
  readonly baseURL: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly apiKey: string;
  readonly modelId: string;
  readonly mode: 'process' | 'in-process';
  /** The checkpoint folder served. */
  readonly modelDir: string;
  /** In-process only: the app and what it drives (for tests that look inside). */
  readonly local?: {
    readonly app: import('fastify').FastifyInstance;
    readonly scheduler: import('../../src/scheduler/index.ts').Scheduler;
    readonly model: import('../../src/api/types.ts').ServedModel;
    /** Tears down the pipeline under the running app (to test failures mid-stream). */
    breakPipeline(): Promise<void>;
  };
  stop(): Promise<void>;
}

const checkpoints = new Map<string, Promise<string>>();
let cacheRoot: string | undefined;

/** A tiny random checkpoint of `family`, generated once per test process and removed at exit. */
export function tinyCheckpoint(family: NonNullable<HearthOptions['family']> = 'qwen3'): Promise<string> {
  let p = checkpoints.get(family);
  if (p === undefined) {
    if (cacheRoot === undefined) {
      const root = mkdtempSync(path.join(os.tmpdir(), 'hearth-test-ckpt-'));
      cacheRoot = root;
      process.once('exit', () => rmSync(root, { recursive: true, force: true }));
    }
    const dir = path.join(cacheRoot, `tiny-${family}`);
    p = import('../../src/model/index.ts').then(async ({ generateCheckpoint }) => {
      await generateCheckpoint(dir, { preset: `tiny-${family}` });
      return dir;
    });
    checkpoints.set(family, p);
  }
  return p;
}

function hasUpCommand(): boolean {
  return existsSync(path.join(repoRoot, 'src/cli/up-command.ts'));
}

/** The chat template source (one implementation, in src/chat). */
import { chatTemplateSource } from '../../src/chat/template-source.ts';
export const templateSourceOf = chatTemplateSource;

export async function startHearth(t: Tap, opts: HearthOptions = {}): Promise<RunningHearth> {
  const dir = opts.modelDir ?? (await tinyCheckpoint(opts.family ?? 'qwen3'));
  const apiKey = `test-key-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const h = opts.inProcess === true || !hasUpCommand() ? await startInProcess(dir, apiKey, opts) : await startProcess(dir, apiKey, opts);
  t.teardown(() => h.stop());
  return h;
}

async function startProcess(dir: string, apiKey: string, opts: HearthOptions): Promise<RunningHearth> {
  const modelId = path.basename(dir);
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/hearth.js'), 'up', '--model', dir, '--port', '0', '--workers', String(opts.workers ?? 2)], {
    cwd: repoRoot,
    env: { ...process.env, HEARTH_API_KEYS: apiKey, HEARTH_HOST: '127.0.0.1', HEARTH_LOG_LEVEL: process.env['HEARTH_LOG_LEVEL'] ?? 'warn', HEARTH_SERVER_UI: 'false', HEARTH_MODEL_ID: modelId },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hearth up printed no URL in 120 s:\n${out.slice(-4000)}`)), 120_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.length > 1_000_000) out = out.slice(-100_000);
      const m = /http:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):\d+/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[0].replace('localhost', '127.0.0.1'));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hearth up exited with ${String(code)}:\n${out.slice(-4000)}`));
    });
  });
  await waitReady(origin, 120_000, () => out);
  return { baseURL: `${origin}/v1`, origin, apiKey, modelId, mode: 'process', modelDir: dir, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function waitReady(origin: string, timeoutMs: number, log: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${origin}/ready`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`hearth at ${origin} not ready after ${timeoutMs} ms:\n${log().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The API app over real engines in this process (the fallback, and for API tests that need it). */
export async function startInProcess(dir: string, apiKey: string, opts: HearthOptions = {}): Promise<RunningHearth> {
  const served = await loadServedModel(dir, opts.workers ?? 1);
  const { createApp, DEFAULT_LIMITS } = await import('../../src/api/index.ts');
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const { createScheduler } = await import('../../src/scheduler/index.ts');
  const scheduler = createScheduler(served.pipeline, { contextLength: served.model.contextLength, maxConcurrent: limits.maxConcurrent, maxQueue: limits.maxQueue });
  const app = await createApp({ model: served.model, generator: scheduler, apiKeys: [apiKey], limits, logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no TCP address');
  const origin = `http://127.0.0.1:${addr.port}`;
  return {
    baseURL: `${origin}/v1`,
    origin,
    apiKey,
    modelId: served.model.id,
    mode: 'in-process',
    modelDir: dir,
    local: { app, scheduler, model: served.model, breakPipeline: () => served.close() },
    async stop() {
      await app.close();
      scheduler.clear();
      await served.close().catch(() => undefined);
    },
  };
}

/** Tokenizer, template and an in-process pipeline of `stages` real shard engines for `dir`. */
export async function loadServedModel(dir: string, stages = 1): Promise<{
  model: import('../../src/api/types.ts').ServedModel;
  pipeline: import('../../src/scheduler/types.ts').Pipeline;
  close(): Promise<void>;
}> {
  const { loadTokenizer } = await import('../../src/tokenizer/index.ts');
  const { loadChatTemplate } = await import('../../src/chat/template.ts');
  const { loadLocalModel } = await import('../../src/cli/local-model.ts');
  const tokenizer = await loadTokenizer(dir);
  const template = await loadChatTemplate(dir, tokenizer);
  const local = await loadLocalModel(dir, { stages, threads: 1 });
  return {
    model: {
      id: path.basename(dir),
      family: local.config.family,
      contextLength: local.config.maxPositions,
      tokenizer,
      template,
      templateSource: templateSourceOf(dir),
      created: Math.floor(Date.now() / 1000),
    },
    pipeline: local.pipeline,
    close: () => local.pipeline.close(),
  };
}
