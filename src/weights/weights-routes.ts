// The gateway side of "weights to workers": a worker that lacks the checkpoint asks for the
// manifest, then fetches just its stage's tensors as byte ranges of the .safetensors files.
// Peers (exo, llama.cpp RPC) make every device download the whole model; this is the fix.
// Every route needs the cluster token; only files the manifest lists can be read.
import { createReadStream } from 'node:fs';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { HearthError, isHearthError } from '../errors/index.ts';
import { bearerMatches } from './bearer-auth.ts';
import { CheckpointIndex } from './checkpoint-index.ts';
import { parseRange } from './http-range.ts';

export interface WeightsRoutesOptions {
  readonly modelDir: string;
  readonly modelId: string;
  /** The cluster token workers join with. */
  readonly token: string;
}

export const WEIGHTS_PREFIX = '/internal/weights';

function sendError(reply: FastifyReply, err: HearthError): FastifyReply {
  return reply.code(err.status).send({ error: { message: err.message, type: err.type, param: err.param, code: err.code } });
}

export async function weightsRoutes(app: FastifyInstance, opts: WeightsRoutesOptions): Promise<void> {
  if (opts.token.length === 0) throw new HearthError('HEARTH_ERR_CONFIG', ['weightsRoutes needs a non-empty cluster token']);
  const index = new CheckpointIndex(opts.modelDir, opts.modelId);

  // Per-route hook (not app.addHook) so registering without encapsulation cannot put other routes
  // behind the cluster token.
  const onRequest = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!bearerMatches(req.headers.authorization, opts.token)) {
      await sendError(reply, new HearthError('HEARTH_ERR_NODE_UNAUTHORIZED', [req.ip, 'weights need Authorization: Bearer <cluster token>']));
      return reply;
    }
    const model = (req.params as { model?: string }).model;
    if (model !== opts.modelId) {
      await sendError(reply, new HearthError('HEARTH_ERR_MODEL_NOT_FOUND', [model ?? '', opts.modelId]));
      return reply;
    }
  };

  app.get(`${WEIGHTS_PREFIX}/:model/manifest`, { onRequest }, async (req, reply) => {
    const q = req.query as { start?: string; end?: string };
    let range: { start: number; end: number } | undefined;
    if (q.start !== undefined || q.end !== undefined) {
      const start = Number(q.start);
      const end = Number(q.end);
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start) {
        return sendError(reply, new HearthError('HEARTH_ERR_INVALID_REQUEST', [`bad layer range start=${q.start} end=${q.end}`], { param: 'start' }));
      }
      range = { start, end };
    }
    try {
      return await reply.header('cache-control', 'no-store').send(await index.manifest(range));
    } catch (e) {
      // Checkpoint problems are HearthErrors: answer them in hearth's error shape, whatever the host app's handler.
      if (isHearthError(e)) return sendError(reply, e);
      throw e;
    }
  });

  app.get(`${WEIGHTS_PREFIX}/:model/file/:name`, { onRequest }, async (req, reply) => {
    const { name } = req.params as { name: string };
    let f: { abs: string; size: number } | null;
    try {
      f = await index.file(name);
    } catch (e) {
      if (isHearthError(e)) return sendError(reply, e);
      throw e;
    }
    if (f === null) return sendError(reply, new HearthError('HEARTH_ERR_ROUTE_NOT_FOUND', ['GET', `${WEIGHTS_PREFIX}/${opts.modelId}/file/${name}`]));
    const r = parseRange(req.headers.range, f.size);
    reply.header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
    if (r.kind === 'unsatisfiable') {
      return reply.code(416).header('content-range', `bytes */${f.size}`).send();
    }
    if (r.kind === 'none') {
      return reply.header('content-length', f.size).send(createReadStream(f.abs));
    }
    return reply
      .code(206)
      .header('content-range', `bytes ${r.start}-${r.end}/${f.size}`)
      .header('content-length', r.end - r.start + 1)
      .send(createReadStream(f.abs, { start: r.start, end: r.end }));
  });
}
