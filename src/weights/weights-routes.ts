// The gateway side of "weights to workers": a worker that lacks the checkpoint asks for the
// manifest, then fetches just its stage's tensors as byte ranges of the .safetensors files.
// Peers (exo, llama.cpp RPC) make every device download the whole model; this is the fix.
// Every request carries the node's weights grant (src/weights/weights-grants.ts, issue 19): the
// cluster token alone reads nothing here, and a grant reads only the tensors of its own layers
// (plus the small non-weight files: config, tokenizer, template). Only files the index lists
// can be read.
import { createReadStream } from 'node:fs';

/** Read size for served weights: 1 MB reads instead of the default 64 KB (fewer syscalls and
 *  event-loop turns per gigabyte; memory per open stream stays small). */
const READ_CHUNK = 1 << 20;

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { HearthError, isHearthError } from '../errors/index.ts';
import { CheckpointIndex } from './checkpoint-index.ts';
import { parseRange } from './http-range.ts';
import type { WeightsGrant, WeightsGrants } from './weights-grants.ts';
import { shardRoutes } from './shard-serve-routes.ts';
import type { ShardBuilds } from './shard-serve.ts';

export interface WeightsRoutesOptions {
  readonly modelDir: string;
  readonly modelId: string;
  /** The grants the coordinator hands out with each assignment. */
  readonly grants: WeightsGrants;
  /** Prebuilt shards (issue 20): absent = no /shard routes (an older gateway); null = the routes
   *  answer that none is offered (quant none). */
  readonly shards?: ShardBuilds | null;
  /** The cluster's quant, for the /shard routes' answers. */
  readonly quant?: string;
}

export const WEIGHTS_PREFIX = '/internal/weights';

function sendError(reply: FastifyReply, err: HearthError): FastifyReply {
  return reply.code(err.status).send({ error: { message: err.message, type: err.type, param: err.param, code: err.code } });
}

const BEARER_RE = /^Bearer\s+(\S+)$/i;

/** Whether [a, b] (inclusive) lies inside the union of the intervals [s, e) (exclusive). */
function covered(a: number, b: number, intervals: readonly (readonly [number, number])[]): boolean {
  const sorted = [...intervals].sort((x, y) => x[0] - y[0]);
  let at = a;
  for (const [s, e] of sorted) {
    if (s > at) break;
    if (e > at) at = e;
    if (at > b) return true;
  }
  return at > b;
}

export async function weightsRoutes(app: FastifyInstance, opts: WeightsRoutesOptions): Promise<void> {
  const index = new CheckpointIndex(opts.modelDir, opts.modelId);
  const grantOf = new WeakMap<FastifyRequest, WeightsGrant>();

  // Per-route hook (not app.addHook) so registering without encapsulation cannot put other routes
  // behind the grant check.
  const onRequest = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const m = BEARER_RE.exec((req.headers.authorization ?? '').trim());
    const grant = m === null ? null : opts.grants.check(m[1] ?? '');
    if (grant === null) {
      await sendError(reply, new HearthError('HEARTH_ERR_NODE_UNAUTHORIZED', [req.ip, 'weights need Authorization: Bearer <the weights grant of this node\'s assignment>; the cluster token is not one']));
      return reply;
    }
    const model = (req.params as { model?: string }).model;
    if (model !== opts.modelId) {
      await sendError(reply, new HearthError('HEARTH_ERR_MODEL_NOT_FOUND', [model ?? '', opts.modelId]));
      return reply;
    }
    grantOf.set(req, grant);
  };
  const forbidden = (g: WeightsGrant, what: string): HearthError => new HearthError('HEARTH_ERR_WEIGHTS_FORBIDDEN', [g.node, what, g.start, g.end]);
  if (opts.shards !== undefined) {
    shardRoutes(app, opts.shards, opts.quant ?? 'int4', { prefix: WEIGHTS_PREFIX, onRequest, grantOf: (req) => grantOf.get(req) as WeightsGrant, send: sendError });
  }

  app.get(`${WEIGHTS_PREFIX}/:model/manifest`, { onRequest }, async (req, reply) => {
    const g = grantOf.get(req) as WeightsGrant;
    const q = req.query as { start?: string; end?: string };
    // No range: the grant's. Another range than the grant's: refused (the manifest names tensors
    // and their hashes; a node learns those of its own layers only).
    const start = q.start === undefined ? g.start : Number(q.start);
    const end = q.end === undefined ? g.end : Number(q.end);
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start) {
      return sendError(reply, new HearthError('HEARTH_ERR_INVALID_REQUEST', [`bad layer range start=${q.start} end=${q.end}`], { param: 'start' }));
    }
    if (start !== g.start || end !== g.end) return sendError(reply, forbidden(g, `the manifest of layers [${start}, ${end})`));
    try {
      return await reply.header('cache-control', 'no-store').send(await index.manifest({ start, end }));
    } catch (e) {
      // Checkpoint problems are HearthErrors: answer them in hearth's error shape, whatever the host app's handler.
      if (isHearthError(e)) return sendError(reply, e);
      throw e;
    }
  });

  app.get(`${WEIGHTS_PREFIX}/:model/file/:name`, { onRequest }, async (req, reply) => {
    const g = grantOf.get(req) as WeightsGrant;
    const { name } = req.params as { name: string };
    let f: { abs: string; size: number } | null;
    let allowed: [number, number][] | null = null;
    try {
      f = await index.file(name);
      // Weight files: only the byte ranges of the grant's tensors.
      if (name.endsWith('.safetensors') || name.endsWith('.gguf')) allowed = (await index.stageIntervals(g)).get(name) ?? [];
    } catch (e) {
      if (isHearthError(e)) return sendError(reply, e);
      throw e;
    }
    if (f === null) return sendError(reply, new HearthError('HEARTH_ERR_ROUTE_NOT_FOUND', ['GET', `${WEIGHTS_PREFIX}/${opts.modelId}/file/${name}`]));
    const r = parseRange(req.headers.range, f.size);
    if (allowed !== null && r.kind !== 'unsatisfiable') {
      const [a, b] = r.kind === 'none' ? [0, f.size - 1] : [r.start, r.end];
      if (!covered(a, b, allowed)) return sendError(reply, forbidden(g, `bytes ${a}-${b} of ${name}`));
    }
    reply.header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
    if (r.kind === 'unsatisfiable') {
      return reply.code(416).header('content-range', `bytes */${f.size}`).send();
    }
    if (r.kind === 'none') {
      return reply.header('content-length', f.size).send(createReadStream(f.abs, { highWaterMark: READ_CHUNK }));
    }
    return reply
      .code(206)
      .header('content-range', `bytes ${r.start}-${r.end}/${f.size}`)
      .header('content-length', r.end - r.start + 1)
      .send(createReadStream(f.abs, { start: r.start, end: r.end, highWaterMark: READ_CHUNK }));
  });
}
