// Config: precedence, messages that name key + allowed values + source, cross-field errors,
// freezing, bind safety, and that config/default.yaml documents exactly the schema's options
// with the schema's defaults.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import {
  CONFIG_LEAVES,
  DEFAULT_CONFIG_PATH,
  checkBindSafety,
  defaultConfig,
  isLoopbackHost,
  loadConfig,
  type HearthConfig,
} from '../src/config/index.ts';
import { isHearthError } from '../src/errors/index.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function writeYaml(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (!isHearthError(e, 'HEARTH_ERR_CONFIG')) throw e;
    return e.message;
  }
  throw new Error('expected a HEARTH_ERR_CONFIG');
}

t.test('defaults come from the schema and match default.yaml', async (t) => {
  const d = defaultConfig();
  t.equal(d.server.host, '127.0.0.1');
  t.equal(d.server.port, 8080);
  t.same(d.server.apiKeys, []);
  t.equal(d.server.insecure, false);
  t.equal(d.cluster.lostAfterMs, 3000);
  t.equal(d.logging.pretty, 'auto');
  t.equal(d.logging.logPrompts, false);
  // Loading default.yaml as a file must change nothing: every value there is the default.
  t.same(loadConfig({ file: DEFAULT_CONFIG_PATH, env: {} }), d);
});

t.test('default.yaml documents every option with a comment, and nothing else', async (t) => {
  const doc = parseDocument(readFileSync(DEFAULT_CONFIG_PATH, 'utf8'));
  const plain = doc.toJS() as Record<string, unknown>;
  const yamlKeys: string[] = [];
  const walk = (o: Record<string, unknown>, p: string[]): void => {
    for (const [k, v] of Object.entries(o)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, [...p, k]);
      else yamlKeys.push([...p, k].join('.'));
    }
  };
  walk(plain, []);
  t.same(yamlKeys.sort(), CONFIG_LEAVES.map((l) => l.key).sort(), 'same option set as the schema');
  const text = readFileSync(DEFAULT_CONFIG_PATH, 'utf8').split('\n');
  for (const leaf of CONFIG_LEAVES) {
    const name = leaf.path[leaf.path.length - 1] as string;
    const i = text.findIndex((line, idx) => new RegExp(`^\\s*${name}:`).test(line) && sectionOf(text, idx) === leaf.path.slice(0, -1).join('.'));
    t.ok(i > 0, `${leaf.key} present`);
    t.match(text[i - 1] ?? '', /^\s*#/, `${leaf.key} has a comment above it`);
    for (const env of leaf.env.slice(-1)) t.ok((text[i] ?? '').includes(env), `${leaf.key} line names ${env}`);
    t.ok(leaf.schema.description !== undefined && leaf.schema.description.length > 10, `${leaf.key} has a schema description`);
    t.ok('default' in leaf.schema, `${leaf.key} has a schema default`);
  }
});

/** Dotted parent section of the key on line idx, from indentation. */
function sectionOf(lines: string[], idx: number): string {
  const indent = (s: string): number => s.length - s.trimStart().length;
  const out: string[] = [];
  let want = indent(lines[idx] ?? '');
  for (let i = idx - 1; i >= 0 && want > 0; i--) {
    const l = lines[i] ?? '';
    if (l.trim() === '' || l.trim().startsWith('#')) continue;
    if (indent(l) < want) {
      out.unshift(l.trim().replace(/:.*$/, ''));
      want = indent(l);
    }
  }
  return out.join('.');
}

t.test('precedence: flags > env > file > defaults', async (t) => {
  const file = writeYaml('p.yaml', 'server:\n  port: 7000\n  host: 127.0.0.2\nlimits:\n  maxTokens: 100\n  defaultMaxTokens: 50\n');
  const fromFile = loadConfig({ file, env: {} });
  t.equal(fromFile.server.port, 7000);
  t.equal(fromFile.server.host, '127.0.0.2');
  t.equal(fromFile.server.drainMs, 10000, 'unset keys keep their defaults');
  const fromEnv = loadConfig({ file, env: { HEARTH_PORT: '7100', HEARTH_LIMITS_MAX_TOKENS: '200' } });
  t.equal(fromEnv.server.port, 7100);
  t.equal(fromEnv.limits.maxTokens, 200);
  t.equal(fromEnv.server.host, '127.0.0.2');
  const fromFlags = loadConfig({ file, env: { HEARTH_PORT: '7100' }, flags: { port: 7200, 'limits.max-tokens': '300', logging: { level: 'debug' } } });
  t.equal(fromFlags.server.port, 7200);
  t.equal(fromFlags.limits.maxTokens, 300);
  t.equal(fromFlags.logging.level, 'debug');
  // HEARTH_CONFIG names the file when no file option is given.
  t.equal(loadConfig({ env: { HEARTH_CONFIG: file } }).server.port, 7000);
  // The long variable name beats its short alias.
  t.equal(loadConfig({ env: { HEARTH_PORT: '1', HEARTH_SERVER_PORT: '2' } }).server.port, 2);
});

t.test('a .gguf or ollama: model runs int4 (the file\'s blocks) unless a quant is given', async (t) => {
  t.equal(loadConfig({ env: {}, flags: { model: '/m/q4_k_m.gguf' } }).model.quant, 'int4', '.gguf');
  t.equal(loadConfig({ env: {}, flags: { model: 'ollama:qwen2.5:0.5b' } }).model.quant, 'int4', 'ollama:');
  t.equal(loadConfig({ env: {}, flags: { model: '/m/qwen2.5-0.5b' } }).model.quant, 'none', 'a safetensors folder keeps the default');
  t.equal(loadConfig({ env: {}, flags: { model: '/m/q4_k_m.gguf', quant: 'none' } }).model.quant, 'none', 'a flag wins');
  t.equal(loadConfig({ env: { HEARTH_MODEL_QUANT: 'none' }, flags: { model: '/m/q4_k_m.gguf' } }).model.quant, 'none', 'so does the environment');
});

t.test('environment text is converted to each option type', async (t) => {
  const c = loadConfig({
    env: {
      HEARTH_API_KEYS: 'key-one-123, key-two-456,',
      HEARTH_INSECURE: 'yes',
      HEARTH_LOG_PRETTY: 'false',
      HEARTH_WORKER_MEMORY_BYTES: '1.5GiB',
      HEARTH_MODEL_DIR: '/models/x',
      HEARTH_MODEL_MAX_CONTEXT: 'null',
      HEARTH_NATS_URL: 'nats://a:4222,nats://b:4222',
    },
  });
  t.same(c.server.apiKeys, ['key-one-123', 'key-two-456']);
  t.equal(c.server.insecure, true);
  t.equal(c.logging.pretty, false);
  t.equal(c.worker.memoryBytes, 1.5 * 1024 ** 3);
  t.equal(c.model.dir, '/models/x');
  t.equal(c.model.maxContext, null);
  t.equal(loadConfig({ env: { HEARTH_LOG_PRETTY: 'auto' } }).logging.pretty, 'auto');
  t.equal(loadConfig({ env: {}, flags: { 'api-key': 'abcdefgh123' } }).server.apiKeys[0], 'abcdefgh123');
});

t.test('messages name the key, the allowed values, the value and its source', async (t) => {
  t.equal(errorOf(() => loadConfig({ env: { HEARTH_PORT: 'abc' } })), 'config: server.port must be an integer 0..65535 (got "abc" from HEARTH_PORT)');
  const file = writeYaml('bad.yaml', 'model:\n  quant: int8\nserver:\n  prot: 1\n');
  const m = errorOf(() => loadConfig({ file, env: {} }));
  t.match(m, /model\.quant must be one of none \| int4 \(got "int8" from .*bad\.yaml\)/);
  t.match(m, /unknown option server\.prot .*server has: host, port, apiKeys/);
  t.match(errorOf(() => loadConfig({ env: {}, flags: { 'logging.level': 'loud' } })), /logging\.level must be one of fatal \| error \| warn \| info \| debug \| trace \| silent \(got "loud" from flag --logging\.level\)/);
  t.match(errorOf(() => loadConfig({ env: { HEARTH_API_KEYS: 'short' } })), /server\.apiKeys\[0\] must be a string of at least 8 characters \(got "short"/);
  t.match(errorOf(() => loadConfig({ env: { HEARTH_CLUSTER_LOST_AFTER_MS: '-5' } })), /cluster\.lostAfterMs must be an integer 100\.\.600000 \(got "-5" from HEARTH_CLUSTER_LOST_AFTER_MS\)/);
  t.match(errorOf(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} })), /cannot read config file .*missing\.yaml/);
  t.match(errorOf(() => loadConfig({ file: writeYaml('list.yaml', '- 1\n- 2\n'), env: {} })), /must hold a mapping/);
  t.match(errorOf(() => loadConfig({ file: writeYaml('broken.yaml', 'server: [\n'), env: {} })), /not valid YAML/);
});

t.test('cross-field errors name both fields', async (t) => {
  const m = errorOf(() => loadConfig({ env: { HEARTH_LIMITS_DEFAULT_MAX_TOKENS: '5000' }, flags: { 'limits.maxTokens': 1000 } }));
  t.match(m, /limits\.defaultMaxTokens \(5000, from HEARTH_LIMITS_DEFAULT_MAX_TOKENS\).*limits\.maxTokens \(1000, from flag --limits\.maxTokens\)/);
  t.match(errorOf(() => loadConfig({ env: { HEARTH_CLUSTER_HEARTBEAT_MS: '2000' } })), /cluster\.lostAfterMs \(3000.*cluster\.heartbeatMs \(2000/);
  t.match(errorOf(() => loadConfig({ env: { HEARTH_LIMITS_MAX_SEQUENCES_PER_REQUEST: '20' } })), /limits\.maxSequencesPerRequest \(20, from HEARTH_LIMITS_MAX_SEQUENCES_PER_REQUEST\).*limits\.maxConcurrentSequences \(16, from defaults\)/);
  t.match(errorOf(() => loadConfig({ env: { HEARTH_CLUSTER_TLS_ENABLED: 'true', HEARTH_CLUSTER_TLS_CERT: '/c.pem' } })), /cluster\.tls\.cert and cluster\.tls\.key/);
  t.match(errorOf(() => loadConfig({ env: { HEARTH_NATS_URL: 'tls://h:4222' } })), /cluster\.natsUrl .*cluster\.tls\.enabled/);
  // Two problems at once are both reported.
  const both = errorOf(() => loadConfig({ env: { HEARTH_PORT: 'x', HEARTH_MODEL_QUANT: 'q' } }));
  t.match(both, /server\.port.*; model\.quant/);
});

t.test('the result is deep-frozen', async (t) => {
  const c = loadConfig({ env: { HEARTH_API_KEYS: 'abcdefgh1' } }) as HearthConfig;
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.server) && Object.isFrozen(c.server.apiKeys) && Object.isFrozen(c.cluster.tls));
  t.throws(() => {
    c.server.port = 1;
  }, TypeError);
  t.throws(() => c.server.apiKeys.push('x'), TypeError);
});

t.test('bind safety', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) t.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '192.168.1.5', 'example.com']) t.notOk(isLoopbackHost(h), h);
  t.doesNotThrow(() => checkBindSafety(defaultConfig()));
  const open = loadConfig({ env: { HEARTH_HOST: '0.0.0.0' } });
  const m = errorOf(() => checkBindSafety(open));
  t.match(m, /0\.0\.0\.0:8080/);
  t.match(m, /HEARTH_API_KEYS/);
  t.match(m, /--insecure/);
  t.doesNotThrow(() => checkBindSafety(loadConfig({ env: { HEARTH_HOST: '0.0.0.0', HEARTH_API_KEYS: 'abcdefgh1' } })));
  t.doesNotThrow(() => checkBindSafety(loadConfig({ env: { HEARTH_HOST: '0.0.0.0' }, flags: { insecure: true } })));
});
