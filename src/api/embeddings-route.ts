import type { FastifyInstance } from 'fastify';
import { HearthError } from '../errors/index.ts';
import { checkModel } from './chat-request.ts';
import { poolEmbedding, type Pooling } from './embeddings-pooling.ts';
import { contextError } from './generation-fields.ts';
import { schemaRef } from './openapi.ts';
import { admit, watchDisconnect, type ApiContext } from './route-support.ts';

// POST /v1/embeddings (OpenAI's shape): each input's final-normed hidden states from the cluster
// (Scheduler.hiddenStates: the same pipeline as generation, sampling nothing), pooled as the
// checkpoint declares and L2-normalized. Ollama's /api/embed shares embedTexts below.

/** OpenAI's own limit on inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;

export interface EmbeddingsBody {
  readonly model: string;
  readonly input: string | readonly string[] | readonly number[] | readonly (readonly number[])[];
  readonly encoding_format?: 'float' | 'base64';
  readonly dimensions?: number;
  readonly user?: string;
}

/** The inputs as token-id lists: text encoded as the model's tokenizer does by default (with its
 *  special tokens: Qwen3-Embedding's pooled <|endoftext|> comes from there), ids as given. */
export function embeddingInputs(ctx: ApiContext, input: EmbeddingsBody['input'], param = 'input', truncate = false): Int32Array[] {
  const list: readonly (string | readonly number[])[] =
    typeof input === 'string' ? [input]
      : input.length > 0 && input.every((x) => typeof x === 'number') ? [input as readonly number[]]
        : (input as readonly (string | readonly number[])[]);
  if (list.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`'${param}' must not be empty.`], { param });
  if (list.length > MAX_EMBEDDING_INPUTS) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`'${param}' holds ${list.length} inputs; at most ${MAX_EMBEDDING_INPUTS} per request.`], { param });
  const ctxLen = ctx.model.contextLength;
  return list.map((x, i) => {
    const at = list.length === 1 && typeof input === 'string' ? param : `${param}[${i}]`;
    const ids = typeof x === 'string' ? Int32Array.from(ctx.model.tokenizer.encode(x, { addSpecialTokens: true })) : Int32Array.from(x);
    if (ids.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`'${at}' is empty: there is nothing to embed.`], { param: at });
    if (ids.length > ctxLen) {
      // Ollama's truncate (its default): keep the start that fits.
      if (truncate) return ids.subarray(0, ctxLen);
      throw contextError(ctxLen, ids.length, at);
    }
    return ids;
  });
}

/** Inputs of one request embedded at once: enough that every stage of a pipeline has one to run
 *  (stage 0 takes input k+1 while stage 1 runs input k), within the request's slot share. */
export const EMBED_WINDOW = 4;

/** One pooled, normalized embedding per token list, in order (a few in flight, one group). */
export async function embedTexts(ctx: ApiContext, lists: readonly Int32Array[], id: string, signal: AbortSignal): Promise<Float32Array[]> {
  const run = ctx.generator.hiddenStates?.bind(ctx.generator);
  if (run === undefined) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['This server does not compute embeddings (its generator has no hidden states).']);
  const pooling: Pooling = ctx.model.embeddings?.pooling ?? 'mean';
  admit(ctx, Math.min(EMBED_WINDOW, lists.length));
  const out: Float32Array[] = new Array(lists.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < lists.length && !signal.aborted) {
      const i = next++;
      const tokens = lists[i]!;
      const hidden = await run({ id: `${id}-${i}`, group: id, tokens, signal });
      out[i] = poolEmbedding(hidden, tokens.length, pooling);
    }
  };
  await Promise.all(Array.from({ length: Math.min(EMBED_WINDOW, lists.length) }, lane));
  if (signal.aborted) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['the client went away']);
  return out;
}

let nextId = 0;

export function registerEmbeddingsRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/v1/embeddings', { schema: { body: schemaRef('CreateEmbeddingRequest') } }, async (req, reply) => {
    const body = req.body as EmbeddingsBody;
    checkModel(body.model, ctx.model);
    const width = ctx.model.embeddings?.dimensions;
    // Embeddings are the hidden size wide; hearth does not cut them (a Matryoshka cut would need
    // the checkpoint to say it was trained for one). A request for exactly that width is fine.
    if (body.dimensions !== undefined && width !== undefined && body.dimensions !== width) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`This model's embeddings have ${width} dimensions; 'dimensions' ${body.dimensions} is not supported (omit it or send ${width}).`], { param: 'dimensions' });
    }
    const lists = embeddingInputs(ctx, body.input);
    const ac = watchDisconnect(reply);
    const vecs = await embedTexts(ctx, lists, `emb-${(nextId++).toString(36)}`, ac.signal);
    if (body.dimensions !== undefined && width === undefined && vecs[0]!.length !== body.dimensions) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`This model's embeddings have ${vecs[0]!.length} dimensions; 'dimensions' ${body.dimensions} is not supported (omit it or send ${vecs[0]!.length}).`], { param: 'dimensions' });
    }
    const tokens = lists.reduce((n, l) => n + l.length, 0);
    req.log.info({ route: 'embeddings', inputs: lists.length, promptTokens: tokens }, 'embeddings done');
    return {
      object: 'list',
      data: vecs.map((v, index) => ({
        object: 'embedding',
        index,
        // base64: the float32 little-endian bytes (what the openai SDKs ask for by default and decode).
        embedding: body.encoding_format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
      })),
      model: ctx.model.id,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  });
}
