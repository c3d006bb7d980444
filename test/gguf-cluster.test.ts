// A 2-worker cluster served from one .gguf on the gateway's disk: each worker fetches only its
// layers' raw GGUF blocks (byte ranges of the .gguf, verified by sha256), decodes them itself, and
// the cluster gives the tokens one process gives on the same file. A weights grant reads only its
// own layers' ranges of the .gguf.
import t from 'tap';
import Fastify from 'fastify';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NatsBus } from '../src/bus/index.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { resolveGgufModel } from '../src/cli/served-model.ts';
import { createClusterPipeline, modelCostsFromCheckpoint } from '../src/cluster/index.ts';
import { openCheckpoint } from '../src/model/index.ts';
import { stageTensorNames, WeightsGrants, weightsRoutes } from '../src/weights/index.ts';
import { convertCheckpoint } from '../bench/llama-cpp/src/hf-to-gguf.ts';
import { greedy, natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';
import { repoRoot } from './helpers/runtime-exact.ts';

const stories = path.resolve(repoRoot, '../shared/models/stories260k');
const skip = natsMissing() || (fs.existsSync(path.join(stories, 'config.json')) ? false : 'stories260k is absent (../shared/models)');

function findStages(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findStages(p));
    else if (e.name === 'hearth-stage.json') out.push(dir);
  }
  return out;
}

t.test('two workers serve one .gguf, each fetching only its layers', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-ggufc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'stories260k-q8_0.gguf');
  convertCheckpoint(stories, file, 'q8_0');
  const view = await resolveGgufModel(file, path.join(dir, 'state'));
  if (view === null) throw new Error('not resolved');
  const prompt = Int32Array.from([1, 403, 407, 261, 378]);
  const local = await loadLocalModel(view, { threads: 1 });
  const want = await greedy(local.pipeline, 'ref', prompt, 16);
  await local.pipeline.close();

  const nats = await withNats(t);
  const app = Fastify();
  const grants = new WeightsGrants();
  await app.register(weightsRoutes, { modelDir: view, modelId: 'stories', grants });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const addr = app.server.address();
  const gatewayUrl = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;

  const ckpt = openCheckpoint(view);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 1024 });
  const cfg = ckpt.config;
  ckpt.close();
  const bus = await NatsBus.connect({ servers: nats.url, token: nats.token, name: 'gw' });
  const pipeline = createClusterPipeline({
    bus, cost, cluster: 'gg', settleMs: 1500, objective: 'balanced',
    model: { name: 'stories', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl, weightsToken: '' },
    weightsGrants: grants,
  });
  t.teardown(async () => { await pipeline.close(); await bus.close(); });
  const caches = ['c1', 'c2'].map((c) => path.join(dir, c));
  caches.forEach((cache, i) => spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'gg', '--name', `w${i + 1}`, '--cache', cache, '--threads', '1', '--speed', '10', '--memory', '1G']));
  await until(() => { const p = pipeline.coordinator.plan(); return p !== null && p.live && p.stages.length === 2; }, 90_000, 'two live stages');
  t.same(await greedy(pipeline, 's', prompt, 16), want, 'the cluster gives the tokens one process gives on the same .gguf');

  const marker = JSON.parse(fs.readFileSync(path.join(view, 'hearth-gguf.json'), 'utf8')) as { tensors: { name: string; byteStart: number; byteEnd: number }[] };
  const bytesOf = new Map(marker.tensors.map((x) => [x.name, x.byteEnd - x.byteStart]));
  const fileSize = fs.statSync(file).size;
  let fetched = 0;
  for (const cache of caches) {
    const [stage] = findStages(cache);
    t.ok(stage !== undefined, `${path.basename(cache)} holds a stage`);
    const sm = JSON.parse(fs.readFileSync(path.join(stage as string, 'hearth-stage.json'), 'utf8')) as { start: number; end: number; files: Record<string, { size: number }> };
    const names = stageTensorNames([...bytesOf.keys()], sm.start, sm.end, cfg.numLayers, cfg.tieEmbeddings);
    const share = names.reduce((s, n) => s + (bytesOf.get(n) ?? 0), 0);
    const st = fs.readFileSync(path.join(stage as string, 'model.safetensors'));
    const data = st.length - 8 - Number(st.readBigUInt64LE(0));
    t.equal(data, share, `layers [${sm.start}, ${sm.end}): ${data} bytes fetched = exactly its tensors' bytes in the .gguf`);
    t.ok(data < 0.8 * fileSize, `layers [${sm.start}, ${sm.end}): ${data} of the ${fileSize}-byte .gguf`);
    t.notOk(Object.keys(sm.files).some((f) => f.endsWith('.gguf')), 'the .gguf itself was not copied');
    fetched += data;
  }
  // The tied embedding goes to both ends; nothing else is fetched twice.
  t.ok(fetched <= fileSize + (bytesOf.get('model.embed_tokens.weight') ?? 0), `both workers together fetched ${fetched} bytes of ${fileSize}`);

  // A grant reads only its own layers of the .gguf: not the other stage's ranges, not the whole file.
  const plan = pipeline.coordinator.plan();
  const g = grants.grant('probe', 0, 1);
  const layer4 = marker.tensors.find((x) => x.name === `model.layers.${cfg.numLayers - 1}.mlp.down_proj.weight`);
  const headers = (range?: string): Record<string, string> => ({ authorization: `Bearer ${g}`, ...(range === undefined ? {} : { range }) });
  const other = await fetch(`${gatewayUrl}/internal/weights/stories/file/model.gguf`, { headers: headers(`bytes=${layer4?.byteStart}-${(layer4?.byteEnd ?? 1) - 1}`) });
  t.equal(other.status, 403, 'another stage\'s bytes of the .gguf are refused');
  const whole = await fetch(`${gatewayUrl}/internal/weights/stories/file/model.gguf`, { headers: headers() });
  t.equal(whole.status, 403, 'the whole .gguf is refused');
  t.ok(plan !== null, 'plan still live');
});
