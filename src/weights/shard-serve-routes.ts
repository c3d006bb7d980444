// The routes of the gateway's prebuilt shards (issue 20), behind the same per-node weights grant
// as the tensors (weights-routes.ts registers them with its grant hook): a grant reads the shard
// of its own layer range only.
//   GET <prefix>/:model/shard?start=&end=   the manifest (ShardManifest), 503 + Retry-After while
//                                           it builds, 404 when this gateway offers none
//   GET <prefix>/:model/shard/:key/:name    one built file, byte ranges allowed (a resumed fetch)
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';

import { HearthError } from '../errors/index.ts';
import { parseRange } from './http-range.ts';
import type { ShardBuilds } from './shard-serve.ts';
import type { WeightsGrant } from './weights-grants.ts';

export interface ShardRouteContext {
  readonly prefix: string;
  /** The grant check of the weights routes. */
  readonly onRequest: onRequestAsyncHookHandler;
  readonly grantOf: (req: FastifyRequest) => WeightsGrant;
  readonly send: (reply: FastifyReply, err: HearthError) => FastifyReply;
}

/** Seconds a worker waits before asking again while its stage builds. */
const RETRY_S = 2;
const READ_CHUNK = 1 << 20;

export function shardRoutes(app: FastifyInstance, shards: ShardBuilds | null, quant: string, ctx: ShardRouteContext): void {
  const { prefix, onRequest, send } = ctx;
  const forbidden = (g: WeightsGrant, what: string): HearthError => new HearthError('HEARTH_ERR_WEIGHTS_FORBIDDEN', [g.node, what, g.start, g.end]);

  app.get(`${prefix}/:model/shard`, { onRequest }, async (req, reply) => {
    const g = ctx.grantOf(req);
    const q = req.query as { start?: string; end?: string };
    const start = q.start === undefined ? g.start : Number(q.start);
    const end = q.end === undefined ? g.end : Number(q.end);
    const what = `layers [${start}, ${end})`;
    if (start !== g.start || end !== g.end) return send(reply, forbidden(g, `the shard of ${what}`));
    if (shards === null) return send(reply, new HearthError('HEARTH_ERR_SHARD_NOT_OFFERED', [what, `the cluster serves quant ${quant}; only int4 shards are built here`]));
    const s = shards.state(start, end);
    if (s?.status === 'ready') return reply.header('cache-control', 'no-store').send(s.manifest);
    if (s?.status === 'failed') return send(reply, new HearthError('HEARTH_ERR_SHARD_NOT_OFFERED', [what, `its build failed: ${s.error}`]));
    // Asked before it is ready: this worker waits, so its stage goes next.
    shards.urgent(start, end);
    return send(reply.header('retry-after', String(RETRY_S)), new HearthError('HEARTH_ERR_SHARD_BUILDING', [quant, what, RETRY_S]));
  });

  app.get(`${prefix}/:model/shard/:key/:name`, { onRequest }, async (req, reply) => {
    const g = ctx.grantOf(req);
    const { key, name } = req.params as { key: string; name: string };
    const found = shards?.byKey(key) ?? null;
    const file = found?.manifest.files.find((f) => f.name === name);
    if (found === null || file === undefined) return send(reply, new HearthError('HEARTH_ERR_ROUTE_NOT_FOUND', ['GET', `${prefix}/${found?.manifest.model ?? ''}/shard/${key}/${name}`]));
    const m = found.manifest;
    if (m.start !== g.start || m.end !== g.end) return send(reply, forbidden(g, `the shard of layers [${m.start}, ${m.end})`));
    const abs = path.join(found.dir, path.basename(file.name));
    const r = parseRange(req.headers.range, file.size);
    reply.header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
    if (r.kind === 'unsatisfiable') return reply.code(416).header('content-range', `bytes */${file.size}`).send();
    if (r.kind === 'none') return reply.header('content-length', file.size).send(createReadStream(abs, { highWaterMark: READ_CHUNK }));
    return reply
      .code(206)
      .header('content-range', `bytes ${r.start}-${r.end}/${file.size}`)
      .header('content-length', r.end - r.start + 1)
      .send(createReadStream(abs, { start: r.start, end: r.end, highWaterMark: READ_CHUNK }));
  });
}
