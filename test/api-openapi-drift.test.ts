import t from 'tap';
import { registeredRoutes } from '../src/api/index.ts';
import { documentRoutes, loadOpenApiDocument, toFastifyPath } from '../src/api/openapi.ts';
import { startHearth } from './helpers/hearth.ts';

// The OpenAPI document is the one source of the API: every route the app registers is in it with
// the same method, every operation in it is registered, and each request body is validated with
// the very schema the document names for it. Swagger UI (/docs) and /openapi.json serve it.

const h = await startHearth(t, { workers: 1, inProcess: true });
const app = h.local!.app;
const doc = loadOpenApiDocument();

t.test('routes and document agree both ways', async (t) => {
  // HEAD routes are fastify's automatic twins of GET routes; /docs/* are Swagger UI's assets.
  const app2doc = registeredRoutes(app).filter((r) => r.method !== 'HEAD' && !r.docs);
  const fromApp = app2doc.map((r) => `${r.method} ${r.url}`).sort();
  const fromDoc = documentRoutes(doc).map((r) => `${r.method} ${r.url}`).sort();
  t.same(fromApp, fromDoc, 'same set of METHOD path');
  t.ok(fromApp.length >= 8, `${fromApp.length} routes`);
  for (const r of documentRoutes(doc)) t.ok(app.hasRoute({ method: r.method as 'GET', url: r.url }), `${r.method} ${r.url} is served`);
});

t.test('each request body is validated with the schema the document names', async (t) => {
  const routes = registeredRoutes(app);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
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
  t.same(await r.json(), JSON.parse(JSON.stringify(doc)));
  const ui = await fetch(`${h.origin}/docs`, { redirect: 'follow' });
  t.equal(ui.status, 200);
  t.match(await ui.text(), /swagger/i);
  const json = await fetch(`${h.origin}/docs/json`);
  t.equal(json.status, 200);
  t.same(Object.keys((await json.json()) as object).sort(), Object.keys(doc).sort(), 'Swagger UI shows the same document');
});
