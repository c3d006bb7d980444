// Serves the status page (index.html, app.js, style.css next to this file). The files are read
// once at registration: three small files, and a gateway should not touch the disk per request.
// Routes are public (the page itself holds no data; it asks for an API key when /v1/cluster
// answers 401) and carry a strict CSP: the page loads only its own script and style.

import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const ASSETS = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/ui/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { url: '/ui/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
] as const;

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Revalidate every load, so an upgraded gateway never runs a stale app.js.
  'cache-control': 'no-cache',
} as const;

// Any logger/type-provider flavour of fastify instance.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFastify = FastifyInstance<any, any, any, any, any>;

/** Registers GET /, /ui/app.js and /ui/style.css. `config.public` lets them past API-key auth. */
export function uiRoutes(app: AnyFastify): void {
  for (const a of ASSETS) {
    const body = readFileSync(new URL(`./${a.file}`, import.meta.url));
    app.get(a.url, { config: { public: true } }, async (_req, reply) => reply.headers(SECURITY_HEADERS).type(a.type).send(body));
  }
}
