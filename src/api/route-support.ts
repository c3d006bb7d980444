import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HearthError } from '../errors/index.ts';
import { noteUsage } from '../observability/access-log.ts';
import { perRequestSlots } from '../scheduler/index.ts';
import type { Generator } from '../scheduler/types.ts';
import { ChoiceCancelled } from './choice-runner.ts';
import { toHttpError, type OpenAIErrorBody } from './http-errors.ts';
import { SSE_HEADERS, SseWriter } from './sse.ts';
import type { ApiLimits, AppOptions, RequestDoneInfo, ServedModel } from './types.ts';

// What the completion routes share: the context built once in createApp, admission, ids, the SSE
// stream opener and disconnect watching.

export interface ApiContext {
  readonly model: ServedModel;
  readonly generator: Generator;
  readonly limits: ApiLimits;
  readonly fingerprint: string;
  readonly logPrompts: boolean;
  /** Reports a finished request (metrics hook + a log line). */
  done(req: FastifyRequest, info: RequestDoneInfo): void;
  /** A warn line in the gateway's log (errorLog's warn when it has one), never request contents. */
  warn(req: FastifyRequest, obj: object, msg: string): void;
  /** An error after SSE headers went out: logged, reported, and shaped as the error event body. */
  streamError(req: FastifyRequest, err: unknown, route: RequestDoneInfo['route'], promptTokens: number, completionTokens: number, started: number): OpenAIErrorBody;
}

/**
 * Logs an unexpected error (a 5xx) without the request's contents (privacy: prompts stay out of
 * logs unless logging.logPrompts): the request id, route, the error's class, a bounded message and
 * its stack. fastify's own request logger is off in the gateway, so `errorLog` is the gateway's.
 */
export function logInternalError(opts: Pick<AppOptions, 'errorLog'>, req: FastifyRequest, err: unknown, what: string): void {
  const e = err instanceof Error ? err : new Error(String(err));
  const cause = e.cause instanceof Error ? e.cause : null;
  const fields = {
    reqId: req.id,
    method: req.method,
    route: req.routeOptions.url ?? req.url.split('?', 1)[0]!.slice(0, 200),
    err: { type: e.name, message: e.message.slice(0, 300), stack: e.stack ?? '', ...(cause === null ? {} : { cause: { type: cause.name, message: cause.message.slice(0, 300), stack: cause.stack ?? '' } }) },
  };
  (opts.errorLog ?? req.log).error(fields, what);
}

export function createApiContext(opts: AppOptions): ApiContext {
  const onDone = opts.onRequestDone;
  return {
    model: opts.model,
    generator: opts.generator,
    limits: opts.limits,
    fingerprint: fingerprintOf(opts.model),
    logPrompts: opts.logPrompts === true,
    done(req, info) {
      req.log.info({ route: info.route, stream: info.stream, promptTokens: info.promptTokens, completionTokens: info.completionTokens, ttftMs: round(info.ttftMs), ms: round(info.durationMs) }, 'completion done');
      noteUsage(req, info.promptTokens, info.completionTokens);
      onDone?.(info);
    },
    warn(req, obj, msg) {
      const log = opts.errorLog;
      if (log?.warn !== undefined) log.warn({ reqId: req.id, ...obj }, msg);
      else req.log.warn(obj, msg);
    },
    streamError(req, err, route, promptTokens, completionTokens, started) {
      const h = toHttpError(err);
      if (h.internal) logInternalError(opts, req, err, 'stream failed');
      else req.log.warn({ code: h.code, msg: h.body.error.message }, 'stream failed');
      noteUsage(req, promptTokens, completionTokens);
      onDone?.({ route, stream: true, status: h.status, error: h.code, promptTokens, completionTokens, ttftMs: null, durationMs: performance.now() - started });
      return h.body;
    },
  };
}

function round(x: number | null): number | null {
  return x === null ? null : Math.round(x * 10) / 10;
}

/**
 * OpenAI's system_fingerprint names the backend configuration that produced an answer: here the
 * model id, its shape and template. Same fingerprint + same seed → same text.
 */
export function fingerprintOf(model: ServedModel): string {
  const h = createHash('sha256').update(`${model.id}\0${model.family}\0${model.contextLength}\0${model.tokenizer.vocabSize}\0${model.templateSource}`).digest('hex');
  return `fp_${h.slice(0, 10)}`;
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `chatcmpl-<29 alnum>` / `cmpl-...`, as OpenAI spells its ids. */
export function completionId(prefix: string): string {
  const bytes = randomBytes(29);
  let s = `${prefix}-`;
  for (const b of bytes) s += ID_ALPHABET[b % ID_ALPHABET.length];
  return s;
}

export function usageOf(promptTokens: number, completionTokens: number): object {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/**
 * Refuses a request up front when the scheduler's queue cannot take its n sequences: a 429 with
 * Retry-After before any work, rather than a stream that fails half-way (n > 1 is all or nothing).
 * Choices count one by one, and at most the request's share of slots starts at once: the rest wait.
 */
export function admit(ctx: ApiContext, n: number): void {
  const { running, waiting } = ctx.generator.load();
  const share = perRequestSlots(ctx.limits.maxConcurrent, ctx.limits.maxPerRequest ?? null);
  const free = Math.min(share, Math.max(0, ctx.limits.maxConcurrent - running));
  const queued = waiting + Math.max(0, n - free);
  if (queued > ctx.limits.maxQueue) throw new HearthError('HEARTH_ERR_QUEUE_FULL', [running + waiting, 1]);
}

/**
 * Aborts when the client goes away before the answer is complete. The response's 'close' (not the
 * request's, which fires once the body is read) is the connection ending; writableFinished tells
 * a normal end from a disconnect. The scheduler sees the signal and frees the sequence everywhere.
 */
export function watchDisconnect(reply: FastifyReply): AbortController {
  const ac = new AbortController();
  const res = reply.raw;
  const onClose = (): void => {
    if (!res.writableFinished) ac.abort(new Error('client disconnected'));
  };
  res.once('close', onClose);
  return ac;
}

/**
 * Runs a route's answer. Any failure aborts the request's choices (the scheduler frees their
 * sequences at once); a client that went away mid-answer (ChoiceCancelled) has its socket closed,
 * any other error goes on to the error handler.
 */
export async function answerUnlessGone<T>(req: FastifyRequest, reply: FastifyReply, ac: AbortController, answer: () => Promise<T>): Promise<T | FastifyReply> {
  try {
    return await answer();
  } catch (e) {
    ac.abort();
    if (!(e instanceof ChoiceCancelled)) throw e;
    req.log.info('client went away; generation cancelled');
    reply.hijack();
    reply.raw.destroy();
    return reply;
  }
}

/** Takes the socket from fastify and starts the event stream. */
export function openStream(reply: FastifyReply, req: FastifyRequest): SseWriter {
  reply.hijack();
  reply.raw.writeHead(200, { ...SSE_HEADERS, 'x-request-id': String(req.id) });
  // Send each event as its own TCP segment at once; the default Nagle delay is visible per token.
  reply.raw.socket?.setNoDelay(true);
  return new SseWriter(reply.raw);
}
