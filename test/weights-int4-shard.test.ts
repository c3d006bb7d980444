// Issue 20 item 3: a layer range is quantized once per cluster (on the gateway, which holds the
// checkpoint) and fetched as int4 by the worker that runs it — not fetched as bf16 and quantized
// on every node. Real nats-server, real worker processes, the gateway's real weights routes.
import t from 'tap';
import Fastify, { type FastifyInstance } from 'fastify';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NatsBus } from '../src/bus/index.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { createClusterPipeline, modelCostsFromCheckpoint, type ClusterPipeline } from '../src/cluster/index.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { openCheckpoint } from '../src/model/index.ts';
import { defaultInt4Block, defaultKvDtype } from '../src/runtime/shard-session.ts';
import { ensureStageShard, ShardBuilds, WeightsGrants, weightsRoutes } from '../src/weights/index.ts';
import { greedy, natsMissing, spawnWorker, until, withNats, type WorkerProc } from './helpers/nats.ts';

const skip = natsMissing();
const PROMPT = Int32Array.from({ length: 8 }, (_, i) => (i * 71 + 2) % 1000);

/** What these helpers need of a tap test (as test/helpers/nats.ts has it). */
interface Tap {
  teardown(fn: () => unknown): void;
}

interface Served {
  /** Bytes the gateway sent, by the route's kind. */
  shard: number;
  tensors: number;
  other: number;
}

/** The gateway's weights routes with prebuilt int4 shards, counting every byte it serves. */
async function startGateway(t: Tap, model: string, cacheDir: string): Promise<{ app: FastifyInstance; url: string; grants: WeightsGrants; shards: ShardBuilds; served: Served }> {
  const app = Fastify();
  const grants = new WeightsGrants();
  const ckpt = openCheckpoint(model);
  const tie = ckpt.config.tieEmbeddings;
  ckpt.close();
  const shards = new ShardBuilds({ modelDir: model, modelId: 'tiny', quant: 'int4', cacheDir, int4Block: defaultInt4Block(), kvDtype: defaultKvDtype(), tieEmbeddings: tie });
  grants.onGrant((_n, start, end) => shards.want(start, end));
  const served: Served = { shard: 0, tensors: 0, other: 0 };
  app.addHook('onSend', async (req, reply, payload) => {
    const n = Number(reply.getHeader('content-length') ?? 0);
    if (reply.statusCode >= 300) return payload;
    if (req.url.includes('/shard/')) served.shard += n;
    else if (req.url.includes('.safetensors')) served.tensors += n;
    else served.other += n;
    return payload;
  });
  await app.register(weightsRoutes, { modelDir: model, modelId: 'tiny', grants, shards, quant: 'int4' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(async () => { shards.close(); await app.close(); });
  const addr = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`, grants, shards, served };
}


async function startPipeline(t: Tap, model: string, natsUrl: string, token: string, gatewayUrl: string, grants: WeightsGrants, cluster: string): Promise<ClusterPipeline> {
  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'int4', kvTokens: 1024 });
  const cfg = ckpt.config;
  ckpt.close();
  const bus = await NatsBus.connect({ servers: natsUrl, token, name: 'gw' });
  const pipeline = createClusterPipeline({
    bus, cost, cluster, settleMs: 1500, objective: 'balanced', quant: 'int4',
    model: { name: 'tiny', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl, weightsToken: '' },
    weightsGrants: grants,
  });
  t.teardown(async () => { await pipeline.close(); await bus.close(); });
  return pipeline;
}

function filesUnder(dir: string): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out = e.isDirectory() ? out.concat(filesUnder(p)) : out.concat([p]);
  }
  return out;
}

function spawn(t: Tap, nats: { url: string; token: string }, cluster: string, name: string, root: string): WorkerProc {
  // Each worker its own shard cache: nothing shared with the gateway's (a separate device).
  return spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', cluster, '--name', name, '--cache', path.join(root, `${name}-stages`), '--threads', '1', '--speed', '10', '--memory', '1G'],
    { HEARTH_CACHE_DIR: path.join(root, `${name}-shards`) });
}

t.test('workers with empty caches serve stages the gateway quantized once, fetched as int4', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-int4-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  // bf16, as checkpoints are published: the bf16 path would fetch 2 bytes a weight.
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 128, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 256, numLayers: 6, vocabSize: 1000, tokenizer: false, seed: 4, dtype: 'bf16' });

  const nats = await withNats(t);
  const gw = await startGateway(t, model, path.join(dir, 'gw-shards'));
  const pipeline = await startPipeline(t, model, nats.url, nats.token, gw.url, gw.grants, 'i4');
  const workers = ['w1', 'w2'].map((n) => spawn(t, nats, 'i4', n, dir));
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 120_000, 'two live stages');
  const stages = pipeline.coordinator.plan()!.stages.map((s) => [s.start, s.end] as const);

  // The same tokens as one process building int4 itself at the same split (`hearth generate --split`).
  const local = await loadLocalModel(model, { threads: 1, quant: 'int4', split: stages.map(([s, e]) => `${s}:${e}`).join(',') });
  const want = await greedy(local.pipeline, 'ref', PROMPT, 12);
  await local.pipeline.close();
  t.same(await greedy(pipeline, 's', PROMPT, 12), want, 'int4 shards built on the gateway serve the tokens of a local int4 build at the same split');

  // What crossed the wire: the built shard files, not the bf16 tensors.
  const built = stages.map(([s, e]) => {
    const st = gw.shards.state(s, e);
    if (st?.status !== 'ready') throw new Error(`stage [${s}, ${e}) not ready: ${JSON.stringify(st)}`);
    return st.manifest;
  });
  const shardBytes = built.reduce((n, m) => n + m.files.reduce((a, f) => a + f.size, 0), 0);
  const bf16 = filesUnder(model).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(f).size, 0);
  t.equal(gw.served.tensors, 0, 'no bf16 tensor byte was fetched');
  t.equal(gw.served.shard, shardBytes, `the workers fetched the built shards' ${shardBytes} bytes (the bf16 tensors are ${bf16})`);
  t.ok(shardBytes < 0.6 * bf16, 'which is well under the bf16 tensors');
  t.equal(gw.shards.builds, 2, 'each stage was built once, on the gateway');
  for (const [i, w] of workers.entries()) {
    const log = w.stderr();
    t.match(log, /int4 shard fetched from the gateway: loading it, nothing quantized here/, `w${i + 1} loaded the fetched shard`);
    t.notMatch(log, /fetching stage weights|fetching the bf16 tensors/, `w${i + 1} fetched no tensors and built nothing`);
    // Nothing quantized on the worker: its shard cache holds only the gateway's entry, as is.
    const entries = readdirSync(path.join(dir, `w${i + 1}-shards`)).filter((n) => /^[0-9a-f]{32}$/.test(n));
    t.equal(entries.length, 1, `w${i + 1} holds one shard entry`);
    t.ok(built.some((m) => m.key === entries[0]), `w${i + 1}'s entry is the gateway's content address`);
    t.notOk(filesUnder(path.join(dir, `w${i + 1}-stages`)).some((f) => f.endsWith('.safetensors')), `w${i + 1} wrote no safetensors`);
  }

  // Issue 19's grant rule, for shards: a grant reads its own stage's shard only.
  const [a, b] = built as [typeof built[0], typeof built[0]];
  const token = gw.grants.grant('intruder', a.start, a.end);
  const auth = { authorization: `Bearer ${token}` };
  const own = await fetch(`${gw.url}/internal/weights/tiny/shard/${a.key}/model.onnx`, { headers: auth });
  t.equal(own.status, 200, 'a grant reads its own stage\'s shard');
  await own.arrayBuffer();
  const other = await fetch(`${gw.url}/internal/weights/tiny/shard/${b.key}/model.onnx`, { headers: auth });
  t.equal(other.status, 403, 'a grant cannot read another stage\'s shard file');
  t.equal(((await other.json()) as { error: { code: string } }).error.code, 'HEARTH_ERR_WEIGHTS_FORBIDDEN');
  const otherManifest = await fetch(`${gw.url}/internal/weights/tiny/shard?start=${b.start}&end=${b.end}`, { headers: auth });
  t.equal(otherManifest.status, 403, 'nor its manifest');
  const noGrant = await fetch(`${gw.url}/internal/weights/tiny/shard/${a.key}/model.onnx`, { headers: { authorization: `Bearer ${nats.token}` } });
  t.equal(noGrant.status, 401, 'the cluster token reads no shard');

  // Content-addressed: a worker that already holds the entry (a warm restart) loads it without a byte.
  const before = gw.served.shard;
  const w1 = path.join(dir, 'w1-shards');
  const holder = built.find((m) => readdirSync(w1).includes(m.key))!;
  const g2 = gw.grants.grant('w1-again', holder.start, holder.end);
  const again = await ensureStageShard({ gatewayUrl: gw.url, token: g2, model: 'tiny', start: holder.start, end: holder.end, cacheDir: path.join(dir, 'w1-stages'), shardCacheDir: w1 });
  t.ok(!('offered' in again) && again.fetchedBytes === 0, 'warm: the entry is found by its key');
  t.equal(gw.served.shard, before, 'and no shard byte is asked for');

  // Resumable: a fetch cut off halfway through its largest file continues from the bytes it has.
  const fresh = path.join(dir, 'resume-shards');
  const big = [...holder.files].sort((x, y) => y.size - x.size)[0]!;
  const st = gw.shards.state(holder.start, holder.end);
  if (st?.status !== 'ready') throw new Error('not ready');
  const half = Math.floor(big.size / 2);
  mkdirSync(path.join(fresh, 'tmp', `fetch-${holder.key}`), { recursive: true });
  writeFileSync(path.join(fresh, 'tmp', `fetch-${holder.key}`, big.name), readFileSync(path.join(st.dir, big.name)).subarray(0, half));
  const before2 = gw.served.shard;
  const resumed = await ensureStageShard({ gatewayUrl: gw.url, token: g2, model: 'tiny', start: holder.start, end: holder.end, cacheDir: path.join(dir, 'resume-stages'), shardCacheDir: fresh });
  const whole = holder.files.reduce((n, f) => n + f.size, 0);
  t.ok(!('offered' in resumed) && resumed.fetchedBytes === whole - half, `resumed: ${whole - half} of ${whole} bytes fetched`);
  t.equal(gw.served.shard - before2, whole - half, 'the gateway sent only the missing bytes');
  t.ok(readdirSync(fresh).includes(holder.key), 'and the entry is whole under its key');
});

t.test('a tampered shard file is refused; the worker falls back to the tensors and serves the right tokens', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-int4-bad-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', hiddenSize: 128, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 256, numLayers: 4, vocabSize: 1000, tokenizer: false, seed: 5, dtype: 'bf16' });
  const nats = await withNats(t);
  const gw = await startGateway(t, model, path.join(dir, 'gw-shards'));
  // Built before any worker asks; then one byte of its largest file flipped on the gateway's disk.
  gw.shards.want(0, 4);
  await until(() => gw.shards.state(0, 4)?.status === 'ready', 120_000, 'the shard built');
  const st = gw.shards.state(0, 4);
  if (st?.status !== 'ready') throw new Error('not ready');
  const big = [...st.manifest.files].sort((x, y) => y.size - x.size)[0]!;
  const fd = openSync(path.join(st.dir, big.name), 'r+');
  const one = Buffer.alloc(1);
  readSync(fd, one, 0, 1, Math.floor(big.size / 2));
  one[0] = one[0]! ^ 0xff;
  writeSync(fd, one, 0, 1, Math.floor(big.size / 2));
  closeSync(fd);

  const local = await loadLocalModel(model, { threads: 1, quant: 'int4' });
  const want = await greedy(local.pipeline, 'ref', PROMPT, 10);
  await local.pipeline.close();

  const pipeline = await startPipeline(t, model, nats.url, nats.token, gw.url, gw.grants, 'i4bad');
  const w = spawn(t, nats, 'i4bad', 'w1', dir);
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 1; }, 120_000, 'a live stage');
  t.same(await greedy(pipeline, 's', PROMPT, 10), want, 'served from the tensors, built on the worker: the right tokens');
  const log = w.stderr();
  t.match(log, new RegExp(`${big.name}: sha256 [0-9a-f]{64} does not match the manifest's ${big.sha256}","msg":"fetching the int4 shard failed`), 'the worker names the file whose sha256 did not match');
  t.match(log, /fetching stage weights/, 'and fell back to fetching the tensors');
  t.equal(readdirSync(path.join(dir, 'w1-shards')).filter((n) => n === st.manifest.key).length, 0, 'the tampered entry never entered its cache');
});
