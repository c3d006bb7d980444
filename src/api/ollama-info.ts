import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { hearthVersion } from '../bus/version.ts';
import { HearthError } from '../errors/index.ts';
import { embeddingInputs, embedTexts } from './embeddings-route.ts';
import { ollamaName, resolveOllamaModel } from './ollama-request.ts';
import { schemaRef } from './openapi.ts';
import { completionId, watchDisconnect, type ApiContext } from './route-support.ts';
import type { ServedModel } from './types.ts';

// Ollama's model and embedding routes: /api/tags, /api/show, /api/ps, /api/version, /api/embed and
// the older /api/embeddings. The one model the gateway serves is listed as NAME:latest; sizes are
// not known at the gateway (the weights live on the workers) and are given as 0.

/** A stable digest for the served model (its id, shape and template), as Ollama lists one. */
function digestOf(model: ServedModel): string {
  return createHash('sha256').update(`${model.id}\0${model.family}\0${model.contextLength}\0${model.templateSource}`).digest('hex');
}

function details(model: ServedModel): object {
  return { parent_model: '', format: 'safetensors', family: model.family, families: [model.family], parameter_size: '', quantization_level: '' };
}

function capabilities(model: ServedModel): string[] {
  const caps = ['completion', 'tools', 'embedding'];
  if (model.templateSource.includes('<think>')) caps.push('thinking');
  return caps;
}

interface EmbedBody {
  readonly model: string;
  readonly input?: string | readonly string[];
  readonly prompt?: string;
  readonly truncate?: boolean;
  readonly dimensions?: number;
}

export function registerOllamaInfoRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const model = ctx.model;
  const name = ollamaName(model);
  const modified = new Date(model.created * 1000).toISOString();
  const entry = { name, model: name, modified_at: modified, size: 0, digest: digestOf(model), details: details(model) };

  // Ollama's API version hearth follows is its docs/api.md; the number is hearth's own.
  app.get('/api/version', async () => ({ version: hearthVersion() }));
  app.get('/api/tags', async () => ({ models: [entry] }));
  app.get('/api/ps', async () => ({
    // Loaded for as long as the gateway runs: keep_alive does not unload it.
    models: [{ ...entry, expires_at: '9999-12-31T23:59:59Z', size_vram: 0, context_length: model.contextLength }],
  }));
  app.post('/api/show', { schema: { body: schemaRef('OllamaShowRequest') } }, async (req) => {
    resolveOllamaModel((req.body as { model: string }).model, model);
    const arch = model.family;
    return {
      modelfile: `# served by hearth\nFROM ${model.id}\n`,
      parameters: '',
      template: model.templateSource,
      details: details(model),
      model_info: {
        'general.architecture': arch,
        [`${arch}.context_length`]: model.contextLength,
        ...(model.embeddings === undefined ? {} : { [`${arch}.embedding_length`]: model.embeddings.dimensions }),
      },
      capabilities: capabilities(model),
      modified_at: modified,
    };
  });

  const embed = async (body: EmbedBody, input: string | readonly string[], signal: AbortSignal): Promise<{ vecs: Float32Array[]; tokens: number; ns: number }> => {
    const t0 = process.hrtime.bigint();
    resolveOllamaModel(body.model, model);
    // Ollama truncates inputs longer than the context unless truncate is false.
    const lists = embeddingInputs(ctx, input, body.input !== undefined ? 'input' : 'prompt', body.truncate !== false);
    const vecs = await embedTexts(ctx, lists, completionId('embed'), signal);
    return { vecs, tokens: lists.reduce((n, l) => n + l.length, 0), ns: Number(process.hrtime.bigint() - t0) };
  };
  app.post('/api/embed', { schema: { body: schemaRef('OllamaEmbedRequest') } }, async (req, reply) => {
    const body = req.body as EmbedBody;
    const width = model.embeddings?.dimensions;
    if (body.dimensions !== undefined && width !== undefined && body.dimensions !== width) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`This model's embeddings have ${width} dimensions; 'dimensions' ${body.dimensions} is not supported.`], { param: 'dimensions' });
    }
    const r = await embed(body, body.input ?? '', watchDisconnect(reply).signal);
    return { model: name, embeddings: r.vecs.map((v) => Array.from(v)), total_duration: r.ns, load_duration: 0, prompt_eval_count: r.tokens };
  });
  // The older single-prompt route.
  app.post('/api/embeddings', { schema: { body: schemaRef('OllamaEmbeddingsRequest') } }, async (req, reply) => {
    const body = req.body as EmbedBody;
    const r = await embed(body, body.prompt ?? '', watchDisconnect(reply).signal);
    return { embedding: Array.from(r.vecs[0]!) };
  });
}
