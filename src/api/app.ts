import { randomBytes } from 'node:crypto';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { HearthError } from '../errors/index.ts';
import { registerAccessLog } from '../observability/access-log.ts';
import { anthropicErrorBody } from './anthropic-request.ts';
import { createAuthHook } from './auth.ts';
import { drainBody, watchBodyIdle } from './body-drain.ts';
import { MAX_MESSAGES } from './chat-request.ts';
import { registerChatRoute } from './chat-route.ts';
import { registerCompletionsRoute } from './completions-route.ts';
import { longestToken } from './generation-fields.ts';
import { toHttpError, type HttpError } from './http-errors.ts';
import { isAnthropicRoute, registerMessagesRoutes } from './messages-route.ts';
import { registerModelRoutes } from './models-route.ts';
import { registerEmbeddingsRoute } from './embeddings-route.ts';
import { isOllamaRoute, ollamaErrorBody, registerOllamaRoutes } from './ollama-route.ts';
import { createSchemaAjv, openApiJson, servedDocument } from './openapi.ts';
import { memoryResponseStore, ownerShareBytes } from './response-store.ts';
import { registerResponsesRoutes } from './responses-route.ts';
import { createApiContext, logInternalError } from './route-support.ts';
import type { AppOptions, RequestDoneInfo } from './types.ts';

// The gateway's HTTP app: OpenAI's routes, hearth's own, the OpenAPI document and Swagger UI.
// Every error, from a route, a hook, fastify's body parser or its schema validation, leaves through
// the one error handler below as OpenAI's {"error":{...}} with the status its SDK maps.

export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
  /** Swagger UI's own routes (/docs/...): served, not documented. */
  readonly docs: boolean;
  /** The component schema name the body is validated with (null: no body schema). */
  readonly bodySchema: string | null;
}

/** Generating routes, by the name requests report under (metrics, logs). */
const ROUTE_NAMES: Readonly<Record<string, RequestDoneInfo['route']>> = { '/v1/chat/completions': 'chat', '/v1/completions': 'completions', '/v1/responses': 'responses', '/v1/messages': 'messages' };

/** Defaults of config limits.requestTimeoutMs / limits.bodyIdleMs (config/schema.json). */
const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
const DEFAULT_BODY_IDLE_MS = 30_000;

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route the app registered (the OpenAPI drift test compares them with the document). */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

export async function createApp(opts: AppOptions): Promise<FastifyInstance> {
  // A client must send its whole request within requestTimeoutMs (node answers 408 and closes)
  // and never leave its body silent for bodyIdleMs: otherwise a client dripping one byte per 5 s
  // holds a socket forever (issue 19). Neither applies once the body is in, so long SSE streams
  // and slow queues are untouched; node checks the deadline every connectionsCheckingInterval.
  const requestTimeout = opts.limits.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const bodyIdle = opts.limits.bodyIdleMs ?? DEFAULT_BODY_IDLE_MS;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.limits.bodyBytes,
    requestTimeout,
    http: { headersTimeout: Math.min(60_000, requestTimeout), connectionsCheckingInterval: Math.min(1000, requestTimeout) },
    genReqId: () => `req_${randomBytes(12).toString('hex')}`,
    // The JSON body parser (secure-json-parse) refuses __proto__ / constructor.prototype keys.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // close() must not wait for idle keep-alive sockets (SSE clients, SDK connection pools).
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 512 },
    // The access log below is the one line per request; fastify's own pair would repeat it.
    // (fastify 5.12 moved this setting into its LogController; the top-level option warns.)
    logController: new LogController({ disableRequestLogging: opts.accessLog !== undefined }),
  });
  if (opts.accessLog !== undefined) registerAccessLog(app, opts.accessLog);
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (r) => {
    const body = (r.schema as { body?: { $ref?: unknown } } | undefined)?.body?.$ref;
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, docs: r.url.startsWith('/docs'), bodySchema: typeof body === 'string' ? body : null });
  });
  registered.set(app, routes);
  const ajv = createSchemaAjv();
  // Request schemas are `$ref`s into openapi.yaml's components, compiled by an ajv that holds them
  // all (see openapi.ts for why its options differ from fastify's defaults).
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema as object));

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-request-id', req.id);
    return payload;
  });
  app.addHook('onRequest', async (req) => watchBodyIdle(req.raw, bodyIdle));
  // A conversation longer than any request may carry is refused before the schema walks every
  // message of it (100k one-character messages: ~60 ms of validation on the event loop after a
  // ~30 ms parse; issue 19 wants /health answered within 100 ms whatever one request holds).
  app.addHook('preValidation', async (req) => {
    const body = req.body as { messages?: unknown; input?: unknown } | null | undefined;
    if (typeof body !== 'object' || body === null) return;
    for (const field of ['messages', 'input'] as const) {
      const list = body[field];
      if (Array.isArray(list) && list.length > MAX_MESSAGES) {
        throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Too many messages: ${list.length} (limit ${MAX_MESSAGES} messages per request); compact the conversation.`], { param: field });
      }
    }
  });
  const auth = createAuthHook(opts.apiKeys);
  if (auth !== null) app.addHook('onRequest', auth);

  const ctx = createApiContext(opts);
  // Scan the vocabulary once at boot (about a second for 150k tokens), not on the first request.
  longestToken(opts.model.tokenizer);
  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    let h: HttpError;
    try {
      h = toHttpError(err, { body: req.body, bodyLimit: opts.limits.bodyBytes });
    } catch (inner) {
      // Describing the error failed (it quotes the body): still one OpenAI-shaped, logged 500.
      logInternalError(opts, req, inner, 'describing an error failed');
      h = toHttpError(new HearthError('HEARTH_ERR_INTERNAL', ['the request failed and the error could not be described']));
    }
    // Answer a too-large body once the client has sent it all (see body-drain.ts).
    if (h.status === 413 && !(await drainBody(req.raw))) void reply.header('connection', 'close');
    if (h.internal) logInternalError(opts, req, err, 'request failed');
    else req.log.info({ code: h.code, status: h.status, param: h.body.error.param }, h.body.error.message);
    const route = ROUTE_NAMES[req.routeOptions.url ?? ''] ?? null;
    if (route !== null) opts.onRequestDone?.({ route, stream: false, status: h.status, error: h.code, promptTokens: 0, completionTokens: 0, ttftMs: null, durationMs: reply.elapsedTime });
    // Anthropic's routes answer in Anthropic's error shape (what its SDKs and Claude Code parse),
    // Ollama's (/api/*) in Ollama's {"error": "..."}.
    if (isOllamaRoute(req.routeOptions.url ?? req.url)) return reply.code(h.status).headers(h.headers).send(ollamaErrorBody(h.body.error.message));
    return reply.code(h.status).headers(h.headers).send(isAnthropicRoute(req.routeOptions.url) ? anthropicErrorBody(h.status, h.body.error.message, h.code) : h.body);
  });
  app.setNotFoundHandler((req) => {
    throw new HearthError('HEARTH_ERR_ROUTE_NOT_FOUND', [req.method, req.url.split('?', 1)[0]!.slice(0, 200)]);
  });

  const doc = servedDocument(opts.model.id);
  // @fastify/swagger in static mode serves this document as is: the routes' schemas come from it,
  // never the other way round. (A structuredClone: the plugin may annotate what it is given.)
  await app.register(swagger, { mode: 'static', specification: { document: doc as never } });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const docJson = openApiJson(opts.model.id);
  app.get('/openapi.json', async (_req, reply) => reply.type('application/json; charset=utf-8').send(docJson));

  app.get('/health', async () => ({ status: 'ok', model: opts.model.id }));
  app.get('/ready', async (_req, reply) => {
    const ready = opts.ready?.() ?? true;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', model: opts.model.id });
  });
  app.get('/v1/cluster', async () => opts.cluster?.() ?? { nodes: [] });
  app.get('/v1/cluster/doctor', async () => (await opts.clusterDoctor?.()) ?? { nodes: [], problems: ['this gateway runs no cluster (in-process model): nothing to check'] });
  registerModelRoutes(app, opts.model);
  registerChatRoute(app, ctx);
  registerCompletionsRoute(app, ctx);
  registerResponsesRoutes(app, ctx, opts.responseStore ?? memoryResponseStore(ownerShareBytes(opts.apiKeys.length)), opts.mcp);
  registerMessagesRoutes(app, ctx);
  registerEmbeddingsRoute(app, ctx);
  registerOllamaRoutes(app, ctx);
  if (opts.extraRoutes !== undefined) await opts.extraRoutes(app);
  await app.ready();
  return app;
}
