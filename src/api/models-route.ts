import type { FastifyInstance } from 'fastify';
import { HearthError } from '../errors/index.ts';
import type { ServedModel } from './types.ts';

// GET /v1/models and /v1/models/{model}. Beside OpenAI's fields, the context length under the
// names vLLM (max_model_len) and LM Studio/OpenRouter clients (context_length) read.

export function modelObject(m: ServedModel): object {
  return {
    id: m.id, object: 'model', created: m.created, owned_by: 'hearth', max_model_len: m.contextLength, context_length: m.contextLength,
    ...(m.notice !== undefined ? { description: m.notice } : {}),
  };
}

export function registerModelRoutes(app: FastifyInstance, model: ServedModel): void {
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject(model)] }));
  app.get('/v1/models/:model', async (req) => {
    const id = (req.params as { model: string }).model;
    if (id !== model.id) throw new HearthError('HEARTH_ERR_MODEL_NOT_FOUND', [id.slice(0, 256), model.id], { param: 'model' });
    return modelObject(model);
  });
}
