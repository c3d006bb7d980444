// Loads hearth's configuration: defaults (config/schema.json) < config file < HEARTH_* environment
// < command-line flags. Validated once with a schema compiled at module load (fails fast, like
// fastify's lib/initial-config-validation.js), then deep-frozen so nothing can drift at runtime.
// Every message names the option, its allowed values, the offending value and where it came from.

import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { HearthError } from '../errors/index.ts';
import { CONFIG_LEAVES, CONFIG_SCHEMA, coerceSize, coerceText, describeAllowed, leafFor, nodeAt, type ConfigLeaf } from './config-schema.ts';
import type { HearthConfig } from './types.ts';

export interface LoadConfigOptions {
  /** YAML or JSON file; default: env.HEARTH_CONFIG, else none (defaults only). */
  file?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Parsed command-line flags. Keys are dotted option paths ("limits.maxTokens", kebab-case
   * allowed: "limits.max-tokens"), nested objects ({ server: { port: 1 } }) or one of the short
   * names in FLAG_ALIASES (port, host, api-key, insecure, …). String values are converted like
   * environment variables; undefined values are ignored.
   */
  flags?: Record<string, unknown>;
}

/** Short flag names → option paths (hearth up --port 9000 --api-key K --insecure). */
export const FLAG_ALIASES: Readonly<Record<string, string>> = {
  host: 'server.host',
  port: 'server.port',
  apiKey: 'server.apiKeys',
  apiKeys: 'server.apiKeys',
  insecure: 'server.insecure',
  model: 'model.dir',
  modelDir: 'model.dir',
  modelId: 'model.id',
  quant: 'model.quant',
  maxContext: 'model.maxContext',
  nats: 'cluster.natsUrl',
  natsUrl: 'cluster.natsUrl',
  join: 'cluster.natsUrl',
  token: 'cluster.token',
  natsHost: 'cluster.natsHost',
  natsPort: 'cluster.natsPort',
  provider: 'worker.provider',
  workers: 'cluster.workers',
  threads: 'worker.threads',
  memory: 'worker.memoryBytes',
  cache: 'worker.cacheDir',
  cacheDir: 'worker.cacheDir',
  cluster: 'cluster.name',
  logLevel: 'logging.level',
  logPrompts: 'logging.logPrompts',
};

const ajv = new Ajv({ allErrors: true, useDefaults: true, allowUnionTypes: true, strict: true });
const validate = ajv.compile<HearthConfig>(CONFIG_SCHEMA);

type Json = Record<string, unknown>;
const isPlain = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const camel = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function setPath(root: Json, path: readonly string[], value: unknown): void {
  let node = root;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    if (!isPlain(next)) node[seg] = {};
    node = node[seg] as Json;
  }
  node[path[path.length - 1] as string] = value;
}

function getPath(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const seg of path) node = isPlain(node) || Array.isArray(node) ? (node as Json)[seg] : undefined;
  return node;
}

function flatten(obj: Json, prefix: string[], out: [string[], unknown][]): void {
  for (const [k, v] of Object.entries(obj)) {
    const p = [...prefix, ...k.split('.').map(camel)];
    if (isPlain(v)) flatten(v, p, out);
    else out.push([p, v]);
  }
}

function fail(problems: string[]): never {
  throw new HearthError('HEARTH_ERR_CONFIG', [problems.join('; ')]);
}

function readFile(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return fail([`cannot read config file ${file}: ${(e as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    return fail([`${file} is not valid YAML/JSON: ${(e as Error).message.split('\n')[0] ?? ''}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlain(doc)) return fail([`${file} must hold a mapping of sections (server:, model:, …), got ${Array.isArray(doc) ? 'a list' : typeof doc}`]);
  return doc;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

function show(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

/** One message per offending option (allErrors reports a union type's failure once per branch). */
function explain(errors: readonly ErrorObject[], raw: Json, sources: Map<string, string>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const e of errors) {
    const path = e.instancePath.split('/').slice(1);
    if (e.keyword === 'additionalProperties') {
      const extra = String((e.params as { additionalProperty: string }).additionalProperty);
      const key = [...path, extra].join('.');
      if (seen.has(key)) continue;
      seen.add(key);
      const allowed = Object.keys(nodeAt(path)?.properties ?? {}).join(', ');
      const from = sources.get(key);
      out.push(`unknown option ${key}${from === undefined ? '' : ` (from ${from})`}; ${path.length === 0 ? 'sections are' : `${path.join('.')} has`}: ${allowed}`);
      continue;
    }
    const key = path.map((s) => (/^\d+$/.test(s) ? `[${s}]` : s)).join('.').replace(/\.\[/g, '[');
    if (seen.has(key)) continue;
    seen.add(key);
    const optionPath = path.filter((s) => !/^\d+$/.test(s));
    const node = path.length > optionPath.length ? nodeAt(optionPath)?.items : nodeAt(optionPath);
    const rootKey = optionPath.join('.');
    const from = sources.get(rootKey) ?? 'defaults';
    const shown = sources.has(`raw:${rootKey}`) && path.length === optionPath.length ? sources.get(`raw:${rootKey}`) : show(getPath(raw, path));
    const allowed = node === undefined ? e.message ?? 'invalid' : describeAllowed(node);
    out.push(`${key || '(top level)'} must be ${allowed} (got ${shown} from ${from})`);
  }
  return out;
}

function crossCheck(cfg: HearthConfig, sources: Map<string, string>): string[] {
  const src = (k: string): string => sources.get(k) ?? 'defaults';
  const out: string[] = [];
  const { limits, cluster } = cfg;
  if (limits.defaultMaxTokens !== null && limits.maxTokens !== null && limits.defaultMaxTokens > limits.maxTokens) {
    out.push(`limits.defaultMaxTokens (${limits.defaultMaxTokens}, from ${src('limits.defaultMaxTokens')}) must not exceed limits.maxTokens (${limits.maxTokens}, from ${src('limits.maxTokens')})`);
  }
  if (limits.maxSequencesPerRequest !== null && limits.maxSequencesPerRequest > limits.maxConcurrentSequences) {
    out.push(`limits.maxSequencesPerRequest (${limits.maxSequencesPerRequest}, from ${src('limits.maxSequencesPerRequest')}) must not exceed limits.maxConcurrentSequences (${limits.maxConcurrentSequences}, from ${src('limits.maxConcurrentSequences')})`);
  }
  if (cluster.lostAfterMs < 2 * cluster.heartbeatMs) {
    out.push(`cluster.lostAfterMs (${cluster.lostAfterMs}, from ${src('cluster.lostAfterMs')}) must be at least 2 x cluster.heartbeatMs (${cluster.heartbeatMs}, from ${src('cluster.heartbeatMs')}), or one late heartbeat drops a healthy worker`);
  }
  if ((cluster.tls.cert === null) !== (cluster.tls.key === null)) {
    out.push(`cluster.tls.cert and cluster.tls.key must be set together (cert from ${src('cluster.tls.cert')}, key from ${src('cluster.tls.key')})`);
  }
  if (cluster.natsUrl !== null && /(^|,)\s*tls:\/\//.test(cluster.natsUrl) && !cluster.tls.enabled) {
    out.push(`cluster.natsUrl (${cluster.natsUrl}, from ${src('cluster.natsUrl')}) is a tls:// URL but cluster.tls.enabled is false (from ${src('cluster.tls.enabled')}); set HEARTH_CLUSTER_TLS_ENABLED=true`);
  }
  if (!cluster.tls.enabled && (cluster.tls.ca !== null || cluster.tls.cert !== null)) {
    out.push(`cluster.tls.ca/cert are set (from ${src(cluster.tls.ca !== null ? 'cluster.tls.ca' : 'cluster.tls.cert')}) but cluster.tls.enabled is false (from ${src('cluster.tls.enabled')}); enable TLS or remove them`);
  }
  return out;
}

/**
 * Builds the effective configuration. Throws HearthError HEARTH_ERR_CONFIG listing every problem
 * at once (an operator fixes them in one go rather than one restart each).
 */
export function loadConfig(opts: LoadConfigOptions = {}): Readonly<HearthConfig> {
  const env = opts.env ?? process.env;
  const raw: Json = {};
  // Where each option's value came from, for messages; "raw:KEY" keeps the text the user typed.
  const sources = new Map<string, string>();

  const file = opts.file ?? (env.HEARTH_CONFIG !== undefined && env.HEARTH_CONFIG !== '' ? env.HEARTH_CONFIG : undefined);
  if (file !== undefined) {
    const entries: [string[], unknown][] = [];
    flatten(readFile(file), [], entries);
    for (const [path, value] of entries) {
      const leaf = leafFor(path.join('.'));
      setPath(raw, path, leaf === undefined ? value : coerceSize(leaf, value));
      sources.set(path.join('.'), file);
    }
  }

  const put = (leaf: ConfigLeaf, value: unknown, from: string): void => {
    setPath(raw, leaf.path, typeof value === 'string' ? coerceText(leaf, value) : value);
    sources.set(leaf.key, from);
    sources.set(`raw:${leaf.key}`, JSON.stringify(value));
  };

  for (const leaf of CONFIG_LEAVES) {
    // The long name wins over the short alias when both are set: it is the more deliberate one.
    const name = leaf.env.find((n) => env[n] !== undefined);
    if (name !== undefined) put(leaf, env[name], name);
  }

  // [option path, value, the flag as typed] — messages name the flag the user gave (--workers),
  // not the option path it maps to.
  const flagEntries: [string[], unknown, string][] = [];
  const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
  for (const [k, v] of Object.entries(opts.flags ?? {})) {
    if (v === undefined) continue;
    const alias = FLAG_ALIASES[camel(k)];
    if (alias !== undefined) flagEntries.push([alias.split('.'), v, `--${kebab(k)}`]);
    else if (isPlain(v)) {
      const nested: [string[], unknown][] = [];
      flatten(v, k.split('.').map(camel), nested);
      for (const [p, nv] of nested) flagEntries.push([p, nv, `--${p.join('.')}`]);
    } else flagEntries.push([k.split('.').map(camel), v, `--${k.split('.').map(camel).join('.')}`]);
  }
  for (const [path, v, flag] of flagEntries) {
    const key = path.join('.');
    const leaf = leafFor(key);
    const value = leaf?.key === 'server.apiKeys' && typeof v === 'string' ? [v].flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean) : v;
    if (leaf === undefined) {
      setPath(raw, path, value);
      sources.set(key, `flag ${flag}`);
    } else {
      put(leaf, value, `flag ${flag}`);
    }
  }

  if (!validate(raw)) fail(explain(validate.errors ?? [], raw, sources));
  const cfg = raw as unknown as HearthConfig;
  // A GGUF (an Ollama model is one) is quantized already: unless the user chose, its int4 build
  // computes with the file's own blocks (~the file's size in memory, llama.cpp's numbers) rather
  // than expanding it to fp32 (~8x the file: what `quant: none` does to any checkpoint).
  if (!sources.has('model.quant') && typeof cfg.model.dir === 'string' && (/\.gguf$/i.test(cfg.model.dir) || cfg.model.dir.startsWith('ollama:'))) {
    cfg.model.quant = 'int4';
  }
  const cross = crossCheck(cfg, sources);
  if (cross.length > 0) fail(cross);
  return deepFreeze(cfg);
}

/** The defaults alone (what an empty file and environment give). */
export function defaultConfig(): Readonly<HearthConfig> {
  return loadConfig({ env: {} });
}
