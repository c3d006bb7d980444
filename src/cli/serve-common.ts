// Shared start-up of `hearth up` and `hearth gateway`: config from flags/env/file, the model folder
// (or the offline demo), the logger, and a clean shutdown on SIGINT/SIGTERM.

import os from 'node:os';
import path from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { parseFlags as parseArgs } from './flags.ts';
import { checkBindSafety, loadConfig, type HearthConfig } from '../config/index.ts';
import { generateCheckpoint } from '../model/index.ts';
import { createLogger, type Logger } from '../observability/index.ts';
import { DEMO_MARKER, resolveOrPullModel } from './served-model.ts';

export const SERVE_OPTIONS = {
  config: { type: 'string' },
  model: { type: 'string' },
  'model-id': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'api-key': { type: 'string', multiple: true },
  insecure: { type: 'boolean' },
  quant: { type: 'string' },
  token: { type: 'string' },
  nats: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export interface Served {
  readonly cfg: Readonly<HearthConfig>;
  readonly log: Logger;
  readonly modelDir: string;
  readonly demo: boolean;
  /** Shown with the model everywhere it is listed (status page, /v1/models). */
  readonly notice?: string;
}

/** What the offline demo is, in the words the terminal, the status page and /v1/models use. */
export const DEMO_NOTICE =
  'Demo model: a tiny checkpoint with RANDOM weights, generated offline, so its text is random noise. ' +
  'It is here to show the cluster working; serve a real model with --model ORG/NAME (e.g. Qwen/Qwen2.5-0.5B-Instruct).';

/** Flags → loadConfig's flag object (only the ones given, so env and file still apply). */
export function flagsFrom(values: Record<string, unknown>): Record<string, unknown> {
  const map: Record<string, string> = {
    model: 'model', 'model-id': 'modelId', port: 'port', host: 'host', 'api-key': 'apiKeys', insecure: 'insecure', quant: 'quant', token: 'token',
    nats: 'natsUrl', 'nats-host': 'natsHost', 'nats-port': 'natsPort', provider: 'provider', 'log-level': 'logLevel', workers: 'workers', threads: 'threads',
  };
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    const key = map[k];
    if (key !== undefined && v !== undefined) flags[key] = Array.isArray(v) ? v.join(',') : v;
  }
  return flags;
}

/**
 * How the offline demo is made. It serves agents (issue 21 item 4): a context of 131,072 tokens
 * (coding agents send 7k-17k-token prompts and ask for 32k-64k tokens; the KV cache grows on
 * demand, so an unused context costs nothing) and turns that end (endTokenBias: its random text
 * reaches <|im_end|> within some tens to hundreds of tokens). A cached demo made by another recipe
 * is made again (DEMO_MARKER holds the recipe it was made with).
 */
export const DEMO_RECIPE = Object.freeze({ preset: 'tiny-qwen3', seed: 1, maxPositions: 131_072, endTokenBias: 5.5 } as const);

/** Where `hearth up` keeps the offline demo checkpoint. */
export function demoModelDir(): string {
  return path.join(process.env['HEARTH_HOME'] ?? path.join(os.homedir(), '.cache', 'hearth'), 'demo', 'hearth-demo-tiny-qwen3');
}

export async function prepareServe(values: Record<string, unknown>, name: string): Promise<Served> {
  const cfg = loadConfig({ ...(typeof values['config'] === 'string' ? { file: values['config'] } : {}), env: process.env, flags: flagsFrom(values) });
  checkBindSafety(cfg);
  const log = createLogger(cfg.logging, { name });
  let modelDir: string;
  let demo = false;
  if (cfg.model.dir !== null) {
    // Ctrl-C during a first-model pull stops it cleanly (the next start resumes).
    const ac = new AbortController();
    const abort = (): void => ac.abort();
    process.once('SIGINT', abort);
    try {
      modelDir = await resolveOrPullModel(cfg.model.dir, ac.signal);
    } finally {
      process.off('SIGINT', abort);
    }
  } else {
    modelDir = demoModelDir();
    demo = true;
    await ensureDemo(modelDir);
    process.stderr.write(
      `hearth: no --model given, so this serves a tiny RANDOM demo checkpoint generated offline at ${modelDir}.\n` +
        `        It answers with nonsense; it is here to show the cluster working. For a real model (pulled on first use):\n` +
        `        npm start -- --model Qwen/Qwen2.5-0.5B-Instruct\n`,
    );
  }
  return { cfg, log, modelDir, demo, ...(demo ? { notice: DEMO_NOTICE } : {}) };
}

/** The demo checkpoint at `dir`, made (again) unless it is there from this recipe. */
export async function ensureDemo(dir: string): Promise<void> {
  const recipe = JSON.stringify(DEMO_RECIPE);
  const marker = path.join(dir, DEMO_MARKER);
  if (existsSync(path.join(dir, 'config.json')) && existsSync(marker) && readFileSync(marker, 'utf8') === recipe) return;
  await generateCheckpoint(dir, DEMO_RECIPE);
  writeFileSync(marker, recipe);
}

/** Resolves on the first SIGINT/SIGTERM. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

export { parseArgs };
