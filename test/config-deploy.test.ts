// Deploy files cannot be run here (no Docker engine, no cluster), so check what can be checked
// without one: nats-server accepts both configs (`nats-server -t`), the YAML files parse with the
// expected objects, and every HEARTH_* variable they set is one hearth actually reads — a typo in
// a compose file would otherwise be silently ignored. docs/operator.md documents every option.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_LEAVES } from '../src/config/index.ts';
import { findNatsServerBinary } from '../src/cluster/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (p: string): string => readFileSync(path.join(root, p), 'utf8');

// Variables hearth reads outside the config schema (CLI/worker/paths) or that only the deploy
// files themselves use to build a command line.
const OTHER_VARS = new Set(['HEARTH_CONFIG', 'HEARTH_HOME', 'HEARTH_MODELS_DIR', 'HEARTH_NATS_SERVER', 'HEARTH_PUBLIC_HOST', 'HEARTH_NKEY_SEED', 'HEARTH_WORKER_MEMORY', 'HEARTH_WORKER_ARGS', 'HEARTH_CACHE_DIR', 'HEARTH_CACHE_MAX_GB']);
const CONFIG_VARS = new Set(CONFIG_LEAVES.flatMap((l) => l.env));

const DEPLOY_FILES = ['Dockerfile', 'deploy/docker-compose.yml', 'deploy/systemd/hearth-gateway.service', 'deploy/systemd/hearth-worker.service', 'deploy/k8s/gateway.yaml', 'deploy/k8s/worker.yaml', 'deploy/k8s/nats.yaml', 'deploy/nats-server.conf'];

t.test('every HEARTH_* variable in the deploy files is one hearth reads', async (t) => {
  for (const f of DEPLOY_FILES) {
    const vars = new Set(read(f).match(/\bHEARTH_[A-Z0-9_]+\b/g) ?? []);
    t.ok(vars.size > 0, `${f} configures hearth through the environment`);
    for (const v of vars) t.ok(CONFIG_VARS.has(v) || OTHER_VARS.has(v), `${f}: ${v} is known`);
  }
});

t.test('docs/operator.md documents every option and its variables', async (t) => {
  const doc = read('docs/operator.md');
  for (const l of CONFIG_LEAVES) {
    t.ok(doc.includes(`\`${l.key}\``), `${l.key} documented`);
    for (const e of l.env) t.ok(doc.includes(e), `${e} documented`);
  }
  for (const f of ['Dockerfile', 'deploy/docker-compose.yml', 'deploy/systemd/hearth-gateway.service', 'deploy/systemd/hearth-worker.service', 'deploy/k8s/', 'deploy/nats-server.conf', 'deploy/nats-server-tls.conf']) {
    t.ok(doc.includes(f), `docs mention ${f}`);
    t.ok(existsSync(path.join(root, f)), `${f} exists`);
  }
});

t.test('compose: nats + gateway + 2 workers, secrets from .env, gateway on loopback', async (t) => {
  const c = parse(read('deploy/docker-compose.yml'), { merge: true }) as { services: Record<string, { command?: string[]; environment?: Record<string, string>; ports?: string[]; healthcheck?: { disable?: boolean } }> };
  t.same(Object.keys(c.services).sort(), ['gateway', 'nats', 'worker-1', 'worker-2']);
  const gw = c.services.gateway;
  t.same(gw?.command, ['gateway']);
  t.match(gw?.environment?.HEARTH_API_KEYS ?? '', /^\$\{HEARTH_API_KEYS:\?/, 'compose refuses to start without API keys');
  t.match(gw?.environment?.HEARTH_TOKEN ?? '', /^\$\{HEARTH_TOKEN:\?/);
  t.ok(gw?.ports?.every((p) => p.startsWith('127.0.0.1:')), 'API published on loopback only');
  for (const w of ['worker-1', 'worker-2']) {
    const s = c.services[w];
    t.equal(s?.command?.[0], 'worker');
    t.equal(s?.environment?.HEARTH_JOIN, 'nats://nats:4222');
    t.equal(s?.healthcheck?.disable, true, `${w}: no HTTP healthcheck`);
  }
});

t.test('k8s manifests parse and reference the secret', async (t) => {
  const kinds: string[] = [];
  for (const f of ['namespace.yaml', 'secret.yaml', 'nats.yaml', 'gateway.yaml', 'worker.yaml']) {
    for (const d of parseAllDocuments(read(`deploy/k8s/${f}`))) {
      t.same(d.errors, [], `${f} parses`);
      kinds.push((d.toJS() as { kind: string }).kind);
    }
  }
  t.same(kinds.sort(), ['Deployment', 'Namespace', 'Secret', 'Service', 'Service', 'Service', 'StatefulSet', 'StatefulSet']);
  const k = parse(read('deploy/k8s/kustomization.yaml')) as { resources: string[] };
  for (const r of k.resources) t.ok(existsSync(path.join(root, 'deploy/k8s', r)), `kustomization resource ${r} exists`);
  // The kustomize copy of nats-server.conf must match the main one except the store path.
  const main = read('deploy/nats-server.conf').replace('/var/lib/nats/jetstream', '/data/jetstream');
  t.equal(read('deploy/k8s/nats-server.conf').split('\n').slice(1).join('\n'), main, 'k8s nats config in sync');
});

t.test('nats-server accepts both configs', { skip: findNatsServerBinary() === null ? 'nats-server not installed' : false }, async (t) => {
  const bin = findNatsServerBinary() as string;
  const env = { ...process.env, HEARTH_TOKEN: 'x'.repeat(32) };
  const plain = spawnSync(bin, ['-c', path.join(root, 'deploy/nats-server.conf'), '-t'], { env, encoding: 'utf8' });
  t.equal(plain.status, 0, `nats-server.conf: ${plain.stderr}${plain.stdout}`);

  const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
  if (!hasOpenssl) return t.comment('openssl missing: TLS config not checked');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const o = (...a: string[]): void => void execFileSync('openssl', a, { cwd: dir, stdio: 'ignore' });
  o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
  o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  o('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1');
  // The TLS file includes ./nats-server.conf: copy both, pointing the cert paths at the temp dir.
  copyFileSync(path.join(root, 'deploy/nats-server.conf'), path.join(dir, 'nats-server.conf'));
  writeFileSync(path.join(dir, 'tls.conf'), read('deploy/nats-server-tls.conf').replaceAll('/etc/hearth/tls', dir));
  const tls = spawnSync(bin, ['-c', path.join(dir, 'tls.conf'), '-t'], { env, encoding: 'utf8' });
  t.equal(tls.status, 0, `nats-server-tls.conf: ${tls.stderr}${tls.stdout}`);
});
