// GET /metrics and the per-request counter, as functions taking the app (not encapsulated
// plugins) so the hook sees every route of the gateway.

import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.ts';

// Any logger/type-provider flavour of fastify instance: the routes here need none of them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFastify = FastifyInstance<any, any, any, any, any>;

/** Serves the registry in Prometheus text format at GET /metrics. */
export function metricsRoute(app: AnyFastify, metrics: Metrics): void {
  app.get('/metrics', async (_req, reply) => {
    const body = await metrics.scrape();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(body);
  });
}

/**
 * Counts every answered request in hearth_requests_total{route,status}. The route label is the
 * route pattern (/v1/models/:id), never the raw URL, so label cardinality stays bounded.
 */
export function instrumentRequests(app: AnyFastify, metrics: Metrics): void {
  if (!metrics.enabled) return;
  app.addHook('onResponse', async (req, reply) => {
    const route = (req.routeOptions as { url?: string } | undefined)?.url ?? 'unmatched';
    metrics.requests.inc({ route, status: reply.statusCode });
  });
}
