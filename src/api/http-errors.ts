import type { ErrorObject } from 'ajv';
import { HearthError, isHearthError } from '../errors/index.ts';
import { validationError } from './validation-errors.ts';

// The one place an error becomes HTTP: a status, headers, and OpenAI's body
// {"error":{"message","type","param","code"}} (what openai-node's APIError reads). Route handlers
// throw HearthError; fastify's own errors (bad JSON, body too large, schema failures) and anything
// unexpected come through here too, so no other error shape can leave the server.

export interface OpenAIErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

export interface HttpError {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: OpenAIErrorBody;
  /** The HearthError code (for logs and metrics). */
  readonly code: string;
  /** True when the server is at fault (5xx): worth an error log with the stack. */
  readonly internal: boolean;
}

interface FastifyishError {
  code?: unknown;
  statusCode?: unknown;
  validation?: unknown;
  validationContext?: unknown;
  message?: unknown;
}

export interface ErrorContext {
  /** The request body (validation messages quote the offending value). */
  readonly body?: unknown;
  /** The configured body limit in bytes (for the 413 message). */
  readonly bodyLimit?: number;
}

/** Maps any thrown value to the HTTP answer. */
export function toHttpError(err: unknown, ctx: ErrorContext = {}): HttpError {
  return fromHearth(toHearthError(err, ctx));
}

/** Any thrown value as a HearthError from the catalogue (unknown ones become HEARTH_ERR_INTERNAL). */
export function toHearthError(err: unknown, ctx: ErrorContext = {}): HearthError {
  if (isHearthError(err)) return err;
  const { body } = ctx;
  const limit = ctx.bodyLimit === undefined ? 'the configured limit of' : String(ctx.bodyLimit);
  const e = (err ?? {}) as FastifyishError;
  if (Array.isArray(e.validation)) {
    const root = e.validationContext === 'body' || e.validationContext === undefined ? '' : String(e.validationContext);
    return validationError(e.validation as ErrorObject[], root === '' ? body : undefined, root);
  }
  const code = typeof e.code === 'string' ? e.code : '';
  const msg = typeof e.message === 'string' ? e.message : String(err);
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HearthError('HEARTH_ERR_BODY_TOO_LARGE', [limit], { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HearthError('HEARTH_ERR_MEDIA_TYPE', [msg.replace(/^Unsupported Media Type:?\s*/i, '') || 'none'], { cause: err });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HearthError('HEARTH_ERR_INVALID_JSON', ['the body is empty'], { cause: err });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new HearthError('HEARTH_ERR_INVALID_REQUEST', [msg], { cause: err });
    default:
      break;
  }
  // fastify's JSON parser (secure-json-parse) throws a SyntaxError with statusCode 400 for malformed
  // JSON and for __proto__/constructor.prototype keys (prototype poisoning).
  if (err instanceof SyntaxError || (e.statusCode === 400 && /JSON|prototype/i.test(msg))) {
    return new HearthError('HEARTH_ERR_INVALID_JSON', [msg], { cause: err });
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    if (status === 413) return new HearthError('HEARTH_ERR_BODY_TOO_LARGE', [limit], { cause: err });
    return new HearthError('HEARTH_ERR_INVALID_REQUEST', [msg], { cause: err });
  }
  return new HearthError('HEARTH_ERR_INTERNAL', [msg], { cause: err });
}

function fromHearth(h: HearthError): HttpError {
  const headers: Record<string, string> = {};
  if (h.code === 'HEARTH_ERR_QUEUE_FULL') headers['retry-after'] = String(retryAfterOf(h));
  if (h.code === 'HEARTH_ERR_NO_PLAN') headers['retry-after'] = '5';
  return {
    status: h.status,
    headers,
    body: { error: { message: h.message, type: h.type, param: h.param, code: h.openaiCode } },
    code: h.code,
    internal: h.status >= 500 && h.code !== 'HEARTH_ERR_NO_PLAN',
  };
}

/** Seconds to wait: HEARTH_ERR_QUEUE_FULL's message carries them as its second argument. */
function retryAfterOf(h: HearthError): number {
  const m = /retry after (\d+)/.exec(h.message);
  const s = m === null ? 1 : Number(m[1]);
  return Math.min(60, Math.max(1, s));
}
