import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { createApp, DEFAULT_LIMITS, registeredRoutes } from '../src/api/index.ts';
import { uiRoutes } from '../src/api/ui/index.ts';
import { createMetrics, instrumentRequests, metricsRoute } from '../src/observability/index.ts';
import { WeightsGrants, weightsRoutes } from '../src/weights/index.ts';
import { documentRoutes, EXAMPLE_MODEL, loadOpenApiDocument, servedDocument, toFastifyPath, validatorFor } from '../src/api/openapi.ts';
import { startHearth, tinyCheckpoint } from './helpers/hearth.ts';

// The OpenAPI document is the one source of the API: every route the app registers is in it with
// the same method, every operation in it is registered, and each request body is validated with
// the very schema the document names for it. Swagger UI (/docs) and /openapi.json serve it.

const h = await startHearth(t, { workers: 1, inProcess: true });
const app = h.local!.app;
const doc = loadOpenApiDocument();

/** What an app serves, as "METHOD url": HEAD routes are fastify's automatic twins of GET routes, /docs/* Swagger UI's assets. */
const served = (a: FastifyInstance): string[] => registeredRoutes(a).filter((r) => r.method !== 'HEAD' && !r.docs).map((r) => `${r.method} ${r.url}`).sort();

t.test('the API routes and the document agree both ways', async (t) => {
  const fromApp = served(app);
  const fromDoc = documentRoutes(doc).filter((r) => !r.extra).map((r) => `${r.method} ${r.url}`).sort();
  t.same(fromApp, fromDoc, 'same set of METHOD path');
  t.ok(fromApp.length >= 8, `${fromApp.length} routes`);
  for (const r of documentRoutes(doc).filter((x) => !x.extra)) t.ok(app.hasRoute({ method: r.method as 'GET', url: r.url }), `${r.method} ${r.url} is served`);
});

t.test("with the gateway's extra routes (metrics, status page, weights), still both ways", async (t) => {
  // The same extraRoutes src/cli/gateway.ts registers.
  const metrics = createMetrics({ enabled: true });
  const dir = await tinyCheckpoint('qwen3');
  const grants = new WeightsGrants();
  const full = await createApp({
    model: h.local!.model,
    generator: h.local!.scheduler,
    apiKeys: ['k'.repeat(16)],
    limits: DEFAULT_LIMITS,
    logger: false,
    extraRoutes: async (a) => {
      instrumentRequests(a, metrics);
      metricsRoute(a, metrics);
      uiRoutes(a);
      await a.register(weightsRoutes, { modelDir: dir, modelId: h.local!.model.id, grants });
    },
  });
  t.teardown(() => full.close());
  t.same(served(full), documentRoutes(doc).map((r) => `${r.method} ${r.url}`).sort(), 'every route documented, every documented route served');
  // Worker routes authenticate with the node's weights grant themselves; an API key must not be demanded.
  const w = await full.inject({ method: 'GET', url: `/internal/weights/${h.local!.model.id}/manifest`, headers: { authorization: `Bearer ${grants.grant('n', 0, 1)}` } });
  t.equal(w.statusCode, 200, 'a worker with its weights grant gets the manifest though API keys are on');
  const noToken = await full.inject({ method: 'GET', url: `/internal/weights/${h.local!.model.id}/manifest` });
  t.equal(noToken.statusCode, 401, 'and without it is refused by the weights route');
  t.equal((await full.inject({ method: 'GET', url: '/v1/models' })).statusCode, 401, 'API routes still need the key');
});

t.test('each request body is validated with the schema the document names', async (t) => {
  const routes = registeredRoutes(app);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if ((op as Record<string, unknown>)['x-hearth-extra-route'] === true) continue;
      const ref = (op as { requestBody?: { content: Record<string, { schema: { $ref: string } }> } }).requestBody?.content['application/json']?.schema.$ref;
      const route = routes.find((r) => r.method === method.toUpperCase() && r.url === toFastifyPath(path));
      t.ok(route !== undefined, `${method} ${path}`);
      const expected = ref === undefined ? null : ref.replace('#/components/schemas/', '');
      t.equal(route?.bodySchema ?? null, expected, `${method} ${path} body schema`);
    }
  }
});

t.test('every $ref in the document resolves', async (t) => {
  const refs: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n !== null && typeof n === 'object') for (const [k, v] of Object.entries(n)) k === '$ref' && typeof v === 'string' ? refs.push(v) : walk(v);
  };
  walk(doc);
  t.ok(refs.length > 20);
  for (const r of new Set(refs)) {
    const parts = r.replace(/^#\//, '').split('/');
    let cur: unknown = doc;
    for (const p of parts) cur = (cur as Record<string, unknown> | undefined)?.[p];
    t.ok(cur !== undefined, `${r} resolves`);
  }
  t.equal(doc.openapi, '3.1.0');
});

t.test('/openapi.json serves the document and /docs the UI, without a key', async (t) => {
  const r = await fetch(`${h.origin}/openapi.json`);
  t.equal(r.status, 200);
  t.same(await r.json(), JSON.parse(JSON.stringify(servedDocument(h.modelId))), 'the document, its examples naming the served model');
  const ui = await fetch(`${h.origin}/docs`, { redirect: 'follow' });
  t.equal(ui.status, 200);
  t.match(await ui.text(), /swagger/i);
  const json = await fetch(`${h.origin}/docs/json`);
  t.equal(json.status, 200);
  t.same(Object.keys((await json.json()) as object).sort(), Object.keys(doc).sort(), 'Swagger UI shows the same document');
});

t.test("every request example is valid and Swagger UI's Try it out can send it as it is", async (t) => {
  const served = servedDocument(h.modelId);
  let n = 0;
  for (const [path, item] of Object.entries(served.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const content = (op as { requestBody?: { content: Record<string, { schema: { $ref: string }; examples?: Record<string, { value: Record<string, unknown> }> }> } }).requestBody?.content['application/json'];
      for (const [name, ex] of Object.entries(content?.examples ?? {})) {
        n++;
        const validate = validatorFor(content!.schema.$ref.replace('#/components/schemas/', ''));
        t.ok(validate(ex.value), `${method} ${path} example ${name} validates ${JSON.stringify(validate.errors ?? [])}`);
        t.equal(ex.value['model'], h.modelId, `${name} names the served model, not ${EXAMPLE_MODEL}`);
        const r = await fetch(`${h.origin}${path}`, { method: method.toUpperCase(), headers: { 'content-type': 'application/json', authorization: `Bearer ${h.apiKey}` }, body: JSON.stringify(ex.value) });
        const text = await r.text();
        t.equal(r.status, 200, `${method} ${path} example ${name} answered 200: ${text.slice(0, 300)}`);
      }
    }
  }
  t.ok(n >= 8, `${n} examples sent`);
  // The file itself keeps the placeholder (one document for every gateway).
  t.match(JSON.stringify(doc), EXAMPLE_MODEL);
});
