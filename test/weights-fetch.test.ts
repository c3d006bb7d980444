// Weights to workers: a worker fetches only its own layers' tensors from the gateway (HTTP byte
// ranges, bearer grant), verifies them, caches them, and the folder opens as a real checkpoint.
// Issue 19: the cluster token reads nothing here; a node's grant reads only its own layers.
import { mkdtemp, readdir, readFile, rm, stat, truncate, utimes, writeFile, open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import Fastify from 'fastify';
import t from 'tap';

import { isHearthError } from '../src/errors/index.ts';
import * as modelApi from '../src/model/index.ts';
import { WeightsGrants, ensureStageWeights, layoutSafetensors, readSafetensorsHeader, weightsRoutes, type WeightsManifest } from '../src/weights/index.ts';

const MODEL = 'test-org/tiny-llama';
const TOKEN = 'cluster-secret-token';
const NUM_LAYERS = 4;

/** Deterministic random bytes (xorshift32 floats in [-0.5, 0.5)), so the data is not all zeros. */
function randomF32(n: number, seed: number): Buffer {
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x / 2 ** 32 - 0.5;
  }
  return Buffer.from(out.buffer);
}

/**
 * A sharded llama checkpoint. Uses the model module's generator when it has one; otherwise writes
 * one here from the model module's own tensor-shape table (so openCheckpoint accepts it).
 */
async function makeCheckpoint(dir: string): Promise<void> {
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 32, intermediate_size: 64,
    num_hidden_layers: NUM_LAYERS, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 256,
    max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
    bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32',
  };
  const configText = JSON.stringify(config, null, 2);
  await writeFile(path.join(dir, 'config.json'), configText);
  await writeFile(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } }));
  await writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
  const cfg = modelApi.parseConfig(configText, null, { hasLmHead: true });
  const shapes = modelApi.allTensorShapes(cfg);
  // Two shards split mid-model, so a stage's tensors come from more than one file.
  const half = Math.ceil(shapes.length / 2);
  const parts = [shapes.slice(0, half), shapes.slice(half)];
  const weightMap: Record<string, string> = {};
  let seed = 7;
  for (const [i, part] of parts.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const datas = part.map(([, shape]) => randomF32(shape.reduce((a, b) => a * b, 1), seed++));
    const layout = layoutSafetensors(part.map(([name, shape], j) => ({ name, dtype: 'F32', shape, byteLength: (datas[j] as Buffer).length })));
    await writeFile(path.join(dir, file), Buffer.concat([layout.header, ...datas]));
    for (const [name] of part) weightMap[name] = file;
  }
  await writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

async function rawTensorBytes(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.safetensors'))) {
    const abs = path.join(dir, f);
    const h = await readSafetensorsHeader(abs);
    const all = await readFile(abs);
    for (const e of h.tensors) out.set(e.name, all.subarray(e.byteStart, e.byteEnd));
  }
  return out;
}

t.test('a worker fetches only its layers, verified and cached', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'hearth-weights-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const modelDir = path.join(tmp, 'model');
  await (await import('node:fs/promises')).mkdir(modelDir);
  await makeCheckpoint(modelDir);
  const original = await rawTensorBytes(modelDir);
  const shardNames = (await readdir(modelDir)).filter((n) => n.endsWith('.safetensors'));
  let checkpointBytes = 0;
  for (const n of shardNames) checkpointBytes += (await stat(path.join(modelDir, n))).size;

  const app = Fastify();
  const seen = { requests: 0, fileBytes: 0 };
  app.addHook('onResponse', async (req, reply) => {
    seen.requests++;
    if (req.url.includes('/file/') && reply.statusCode < 300) seen.fileBytes += Number(reply.getHeader('content-length') ?? 0);
  });
  const grants = new WeightsGrants();
  await app.register(weightsRoutes, { modelDir, modelId: MODEL, grants });
  const gatewayUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const base = `${gatewayUrl}/internal/weights/${encodeURIComponent(MODEL)}`;
  // One grant per (node, stage), as the coordinator hands them out with assignments.
  const g13 = grants.grant('n13', 1, 3);
  const g01 = grants.grant('n01', 0, 1);
  const g34 = grants.grant('n34', 3, 4);
  const g02 = grants.grant('n02', 0, 2);
  const g24 = grants.grant('n24', 2, 4);
  const gAll = grants.grant('nall', 0, NUM_LAYERS);
  const auth = { authorization: `Bearer ${gAll}` };
  const cacheDir = path.join(tmp, 'cache');

  await t.test('layers [1,3) of 4: folder opens and every tensor equals the original', async (t) => {
    const progress: [number, number][] = [];
    const dir = await ensureStageWeights({ gatewayUrl, token: g13, model: MODEL, start: 1, end: 3, numLayers: NUM_LAYERS, cacheDir, onProgress: (d, n) => progress.push([d, n]) });
    t.ok(dir.startsWith(path.resolve(cacheDir)), 'folder is under cacheDir');
    const ckpt = modelApi.openCheckpoint(dir, { range: [1, 3] });
    const orig = modelApi.openCheckpoint(modelDir);
    t.teardown(() => { ckpt.close(); orig.close(); });
    const names = orig.tensorsForRange(1, 3);
    t.ok(names.some((n) => n.startsWith('model.layers.1.')) && names.some((n) => n.startsWith('model.layers.2.')), 'stage needs layers 1 and 2');
    for (const n of names) t.same(ckpt.read(n), orig.read(n), `${n} equal`);
    t.notOk(ckpt.has('model.embed_tokens.weight'), 'no embedding on a middle stage');
    t.notOk(ckpt.has('lm_head.weight'), 'no lm_head on a middle stage');
    t.notOk(ckpt.has('model.layers.0.self_attn.q_proj.weight') || ckpt.has('model.layers.3.mlp.up_proj.weight'), 'no other layers');
    // Independent of openCheckpoint: the raw bytes of the stage file equal the original tensors'.
    const fetched = await rawTensorBytes(dir);
    t.same([...fetched.keys()].sort(), [...names].sort(), 'stage file holds exactly the stage tensors');
    for (const [n, b] of fetched) t.ok(b.equals(original.get(n) as Buffer), `${n} bytes identical`);

    const stageBytes = names.reduce((s, n) => s + (original.get(n) as Buffer).length, 0);
    const jsonBytes = (await readdir(modelDir)).filter((n) => n.endsWith('.json') && n !== 'model.safetensors.index.json');
    let extra = 0;
    for (const n of jsonBytes) extra += (await stat(path.join(modelDir, n))).size;
    t.equal(seen.fileBytes, stageBytes + extra, 'transferred exactly the stage tensors plus the json files');
    t.ok(seen.fileBytes < 0.5 * checkpointBytes, `transferred ${seen.fileBytes} B ≪ checkpoint ${checkpointBytes} B`);
    t.ok(await stat(path.join(dir, 'tokenizer.json')), 'tokenizer.json copied');
    // The digests computed while fetching are kept beside the data (issue 20: no second read of the
    // stage to key the shard cache, and none after the folder moves).
    const marker = JSON.parse(await readFile(path.join(dir, 'hearth-stage.json'), 'utf8')) as { files: Record<string, { sha256: string }> };
    const sidecar = JSON.parse(await readFile(path.join(dir, '.hearth-digests.json'), 'utf8')) as Record<string, { sha256: string }>;
    t.equal(sidecar['model.safetensors']?.sha256, marker.files['model.safetensors']?.sha256, 'the stage file\'s digest sits beside it');
    t.notOk(await stat(path.join(dir, 'model.safetensors.index.json')).catch(() => null), 'shard index not copied');
    const lastP = progress[progress.length - 1] as [number, number];
    t.equal(lastP[0], lastP[1], 'progress ends at total');
    t.ok(progress.every(([d], i) => i === 0 || d >= (progress[i - 1] as [number, number])[0]), 'progress is monotonic');
  });

  await t.test('second call hits the cache: no requests', async (t) => {
    const before = seen.requests;
    const dir = await ensureStageWeights({ gatewayUrl, token: g13, model: MODEL, start: 1, end: 3, numLayers: NUM_LAYERS, cacheDir, verifyCache: 'full' });
    t.equal(seen.requests, before, 'no HTTP request');
    // A damaged cache (truncated file) is not trusted: it is fetched again.
    await truncate(path.join(dir, 'model.safetensors'), 100);
    await ensureStageWeights({ gatewayUrl, token: g13, model: MODEL, start: 1, end: 3, numLayers: NUM_LAYERS, cacheDir });
    t.ok(seen.requests > before, 'refetched after damage');
    t.ok(modelApi.openCheckpoint(dir, { range: [1, 3] }), 'and it opens again');
  });

  await t.test('first and last stages carry embedding / norm + lm_head', async (t) => {
    const first = await ensureStageWeights({ gatewayUrl, token: g01, model: MODEL, start: 0, end: 1, numLayers: NUM_LAYERS, cacheDir });
    const last = await ensureStageWeights({ gatewayUrl, token: g34, model: MODEL, start: 3, end: 4, numLayers: NUM_LAYERS, cacheDir });
    const f = await rawTensorBytes(first);
    const l = await rawTensorBytes(last);
    t.ok(f.has('model.embed_tokens.weight') && !f.has('lm_head.weight') && !f.has('model.norm.weight'), 'first: embedding only');
    t.ok(l.has('lm_head.weight') && l.has('model.norm.weight') && !l.has('model.embed_tokens.weight'), 'last: norm + lm_head');
    const ck = modelApi.openCheckpoint(last, { range: [3, 4] });
    t.teardown(() => ck.close());
    t.ok((l.get('lm_head.weight') as Buffer).equals(original.get('lm_head.weight') as Buffer), 'lm_head bytes identical');
  });

  await t.test('wrong or missing grant, or the cluster token: 401', async (t) => {
    for (const headers of [{ authorization: 'Bearer nope' }, {}, { authorization: g13 }, { authorization: `Bearer ${TOKEN}` }]) {
      t.equal((await fetch(`${base}/manifest`, { headers })).status, 401, `manifest ${JSON.stringify(headers)}`);
      t.equal((await fetch(`${base}/file/config.json`, { headers })).status, 401, `file ${JSON.stringify(headers)}`);
    }
    const body = (await (await fetch(`${base}/manifest`)).json()) as { error: { type: string } };
    t.equal(body.error.type, 'authentication_error', 'OpenAI-shaped error');
    const err = await ensureStageWeights({ gatewayUrl, token: 'wrong', model: MODEL, start: 0, end: 2, numLayers: NUM_LAYERS, cacheDir: path.join(tmp, 'c401') }).catch((e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_WEIGHTS_FETCH') && /401/.test(err.message), `clear error: ${(err as Error).message}`);
  });

  await t.test('only manifest files are served; ranges are exact', async (t) => {
    for (const bad of ['..%2Fmodel%2Fconfig.json', '%2Fetc%2Fpasswd', '.hidden', 'nope.json', '..']) {
      const r = await fetch(`${base}/file/${bad}`, { headers: auth });
      t.ok(r.status === 404, `${bad} → ${r.status}`);
    }
    const other = await fetch(`${gatewayUrl}/internal/weights/other-model/manifest`, { headers: auth });
    t.equal(other.status, 404, 'other model id → 404');
    const shard = shardNames[0] as string;
    const whole = await readFile(path.join(modelDir, shard));
    const at = (await readSafetensorsHeader(path.join(modelDir, shard))).tensors[0]!.byteStart;
    const r = await fetch(`${base}/file/${shard}`, { headers: { ...auth, range: `bytes=${at + 10}-${at + 109}` } });
    t.equal(r.status, 206);
    t.equal(r.headers.get('content-range'), `bytes ${at + 10}-${at + 109}/${whole.length}`);
    t.ok(Buffer.from(await r.arrayBuffer()).equals(whole.subarray(at + 10, at + 110)), 'range bytes match');
    const r416 = await fetch(`${base}/file/${shard}`, { headers: { ...auth, range: `bytes=${whole.length}-` } });
    t.equal(r416.status, 416, 'range past the end → 416');
    t.equal((await fetch(`${base}/manifest?start=2&end=9`, { headers: { authorization: `Bearer ${grants.grant('n29', 2, 9)}` } })).status, 400, 'range past the last layer → 400');
    t.equal((await fetch(`${base}/manifest?start=x&end=2`, { headers: auth })).status, 400, 'malformed range → 400');
    const m = (await (await fetch(`${base}/manifest`, { headers: auth })).json()) as WeightsManifest;
    t.equal(m.numLayers, NUM_LAYERS);
    t.equal(m.tensors.length, original.size, 'full manifest lists every tensor');
    t.ok(m.files.every((f) => !f.name.includes('/')), 'flat file names');
  });

  await t.test('a grant reads only the tensors of its own layers (issue 19)', async (t) => {
    const a13 = { authorization: `Bearer ${g13}` };
    const own = (await (await fetch(`${base}/manifest`, { headers: a13 })).json()) as WeightsManifest;
    t.ok(own.tensors.length > 0 && own.tensors.every((x) => /^model\.layers\.[12]\./.test(x.name)), 'no range asked: the grant\'s layers only');
    for (const q of ['', '?start=0&end=4', '?start=0&end=1', '?start=1&end=4']) {
      if (q === '') continue;
      const r = await fetch(`${base}/manifest${q}`, { headers: a13 });
      t.equal(r.status, 403, `manifest${q} → 403`);
      t.equal(((await r.json()) as { error: { code: string } }).error.code, 'HEARTH_ERR_WEIGHTS_FORBIDDEN');
    }
    const full = (await (await fetch(`${base}/manifest`, { headers: auth })).json()) as WeightsManifest;
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.3.self_attn.q_proj.weight']) {
      const x = full.tensors.find((y) => y.name === name);
      if (x === undefined) throw new Error(`${name} missing`);
      const r = await fetch(`${base}/file/${x.file}`, { headers: { ...a13, range: `bytes=${x.byteStart}-${x.byteEnd - 1}` } });
      t.equal(r.status, 403, `${name}: another layer's bytes → 403`);
    }
    const mine = own.tensors[0]!;
    const ok = await fetch(`${base}/file/${mine.file}`, { headers: { ...a13, range: `bytes=${mine.byteStart}-${mine.byteEnd - 1}` } });
    t.equal(ok.status, 206, 'its own tensor → 206');
    t.equal((await fetch(`${base}/file/${mine.file}`, { headers: a13 })).status, 403, 'a whole weights file → 403');
    t.equal((await fetch(`${base}/file/config.json`, { headers: a13 })).status, 200, 'config.json is not weights → 200');
    // A node's new grant replaces its old one.
    const again = grants.grant('n13', 0, 1);
    t.equal((await fetch(`${base}/manifest`, { headers: a13 })).status, 401, 'the replaced grant stops working');
    grants.revoke('n13');
    t.equal((await fetch(`${base}/manifest`, { headers: { authorization: `Bearer ${again}` } })).status, 401, 'a revoked grant stops working');
  });

  await t.test('an aborted fetch leaves nothing behind', async (t) => {
    const c3 = path.join(tmp, 'cache-abort');
    const ac = new AbortController();
    const err = await ensureStageWeights({
      gatewayUrl, token: g02, model: MODEL, start: 0, end: 2, numLayers: NUM_LAYERS, cacheDir: c3, signal: ac.signal,
      onProgress: (done) => { if (done > 0) ac.abort(); },
    }).catch((e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_WEIGHTS_FETCH'), `HEARTH_ERR_WEIGHTS_FETCH: ${(err as Error).message}`);
    t.same(await readdir(path.join(c3, 'test-org--tiny-llama')).catch(() => []), [], 'no partial folder left');
  });

  await t.test('a corrupted byte fails the checksum and leaves nothing behind', async (t) => {
    const c2 = path.join(tmp, 'cache-corrupt');
    // The gateway hashes lazily: warm its hashes, then rot one byte on disk (mtime kept, as bit rot does).
    const a24 = { authorization: `Bearer ${g24}` };
    t.equal((await fetch(`${base}/manifest?start=2&end=4`, { headers: a24 })).status, 200);
    const victim = 'model.layers.3.mlp.up_proj.weight';
    const m = (await (await fetch(`${base}/manifest?start=2&end=4`, { headers: a24 })).json()) as WeightsManifest;
    const info = m.tensors.find((x) => x.name === victim);
    if (info === undefined) throw new Error('victim tensor missing from the manifest');
    const abs = path.join(modelDir, info.file);
    const st = await stat(abs);
    const fh = await open(abs, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, info.byteStart + 5);
    b[0] = (b[0] as number) ^ 0xff;
    await fh.write(b, 0, 1, info.byteStart + 5);
    await fh.close();
    await utimes(abs, st.atimeMs / 1000, st.mtimeMs / 1000);
    const err = await ensureStageWeights({ gatewayUrl, token: g24, model: MODEL, start: 2, end: 4, numLayers: NUM_LAYERS, cacheDir: c2 }).catch((e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_WEIGHTS_FETCH'), 'HEARTH_ERR_WEIGHTS_FETCH');
    t.match((err as Error).message, new RegExp(`${victim.replace(/\./g, '\\.')}.*sha256`), `names the tensor: ${(err as Error).message}`);
    const left = await readdir(path.join(c2, 'test-org--tiny-llama')).catch(() => []);
    t.same(left, [], 'no partial folder left');
  });
});
