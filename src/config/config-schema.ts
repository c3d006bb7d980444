// Reads config/schema.json once and answers questions about it: which options exist (leaves),
// the HEARTH_* variable of each, and a sentence naming an option's allowed values for errors.
// The schema file stays the one source of truth; nothing here restates a default or a range.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SchemaNode {
  type?: string | string[];
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
  additionalProperties?: boolean;
  uniqueItems?: boolean;
}

export const SCHEMA_PATH = fileURLToPath(new URL('../../config/schema.json', import.meta.url));
export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));

export const CONFIG_SCHEMA = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as SchemaNode;

/**
 * Short names for the options people set most; every option also has its long name. The last
 * alias of each is the one config/default.yaml shows. HEARTH_JOIN, HEARTH_TOKEN, HEARTH_CLUSTER
 * are also what `hearth worker` reads, so one environment file serves gateway and workers.
 */
const ENV_ALIASES: Readonly<Record<string, readonly string[]>> = {
  'server.host': ['HEARTH_HOST'],
  'server.port': ['HEARTH_PORT'],
  'server.apiKeys': ['HEARTH_API_KEYS'],
  'server.insecure': ['HEARTH_INSECURE'],
  'cluster.name': ['HEARTH_CLUSTER'],
  'cluster.natsUrl': ['HEARTH_NATS_URL', 'HEARTH_JOIN'],
  'cluster.natsHost': ['HEARTH_NATS_HOST'],
  'cluster.natsPort': ['HEARTH_NATS_PORT'],
  'cluster.token': ['HEARTH_TOKEN'],
  'cluster.workers': ['HEARTH_WORKERS'],
  'worker.provider': ['HEARTH_PROVIDER'],
  'logging.level': ['HEARTH_LOG_LEVEL'],
  'logging.pretty': ['HEARTH_LOG_PRETTY'],
  'logging.logPrompts': ['HEARTH_LOG_PROMPTS'],
};

export interface ConfigLeaf {
  /** Dotted path, e.g. "limits.bodyBytes". */
  readonly key: string;
  readonly path: readonly string[];
  readonly schema: SchemaNode;
  /** Variables that set it, in precedence order: the long form first, then the aliases. */
  readonly env: readonly string[];
}

function snake(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** HEARTH_ + the dotted path in SCREAMING_SNAKE: limits.bodyBytes → HEARTH_LIMITS_BODY_BYTES. */
export function longEnvName(path: readonly string[]): string {
  return ['HEARTH', ...path.map(snake)].join('_');
}

function isObjectNode(node: SchemaNode): boolean {
  return node.type === 'object' && node.properties !== undefined;
}

function collectLeaves(node: SchemaNode, path: string[], out: ConfigLeaf[]): void {
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const p = [...path, name];
    if (isObjectNode(child)) {
      collectLeaves(child, p, out);
      continue;
    }
    const key = p.join('.');
    out.push({ key, path: p, schema: child, env: [longEnvName(p), ...(ENV_ALIASES[key] ?? [])] });
  }
}

const leaves: ConfigLeaf[] = [];
collectLeaves(CONFIG_SCHEMA, [], leaves);
export const CONFIG_LEAVES: readonly ConfigLeaf[] = leaves;
const LEAF_BY_KEY = new Map(leaves.map((l) => [l.key, l]));

export function leafFor(key: string): ConfigLeaf | undefined {
  return LEAF_BY_KEY.get(key);
}

/** The schema node at a dotted path (objects included), or undefined. */
export function nodeAt(path: readonly string[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = CONFIG_SCHEMA;
  for (const seg of path) node = node?.properties?.[seg];
  return node;
}

function types(node: SchemaNode): string[] {
  return node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
}

/** "an integer 0..65535", "one of none | int4", … — used in every validation message. */
export function describeAllowed(node: SchemaNode): string {
  const ts = types(node);
  const nullable = ts.includes('null');
  let what: string;
  if (node.enum !== undefined) {
    what = `one of ${node.enum.map((v) => String(v)).join(' | ')}`;
  } else if (ts.includes('integer') || ts.includes('number')) {
    const noun = ts.includes('integer') ? 'an integer' : 'a number';
    const { minimum: lo, maximum: hi } = node;
    what = lo !== undefined && hi !== undefined ? `${noun} ${lo}..${hi}` : lo !== undefined ? `${noun} >= ${lo}` : hi !== undefined ? `${noun} <= ${hi}` : noun;
  } else if (ts.includes('boolean')) {
    what = 'true or false';
  } else if (ts.includes('array')) {
    const item = node.items === undefined ? 'anything' : describeAllowed(node.items);
    what = `a list (comma-separated in an environment variable) of items that are each ${item}${node.uniqueItems === true ? ', no duplicates' : ''}`;
  } else if (ts.includes('string')) {
    what = 'a string';
    if (node.minLength !== undefined && node.minLength > 1) what += ` of at least ${node.minLength} characters`;
    if (node.pattern !== undefined) what += ` matching /${node.pattern}/`;
  } else {
    what = 'a valid value';
  }
  return nullable ? `${what}, or null` : what;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i;
const SIZE_MULT: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Turns the text of an environment variable or a command-line flag into the option's type.
 * Text that does not fit is returned unchanged so that ajv rejects it and the message can quote
 * exactly what the user typed.
 */
export function coerceText(leaf: ConfigLeaf, text: string): unknown {
  const ts = types(leaf.schema);
  const t = text.trim();
  if (ts.includes('null') && (t === '' || t === 'null')) return null;
  if (ts.includes('array')) return t.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (ts.includes('integer') || ts.includes('number')) {
    if (/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return Number(t);
    return coerceSize(leaf, t);
  }
  const asBool = /^(true|1|yes|on)$/i.test(t) ? true : /^(false|0|no|off)$/i.test(t) ? false : undefined;
  if (ts.includes('boolean') && asBool !== undefined) return asBool;
  if (leaf.schema.enum?.includes(asBool) === true && !leaf.schema.enum.includes(t)) return asBool;
  return text;
}

/** Byte-sized options (…Bytes) also take 512MiB, 8GB, 64k: nobody should count zeros. */
export function coerceSize(leaf: ConfigLeaf, value: unknown): unknown {
  if (typeof value !== 'string' || !leaf.key.endsWith('Bytes')) return value;
  const m = SIZE.exec(value.trim());
  if (m === null) return value;
  const n = Number(m[1]) * (SIZE_MULT[(m[2] ?? '').toLowerCase()] ?? 1);
  return Number.isFinite(n) ? Math.round(n) : value;
}
