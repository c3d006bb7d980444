// hearth's logger: pino JSON lines (one object per line, for journald/Loki/kubectl logs), or
// pino-pretty lines when a person is watching a terminal. Prompts and completions are the user's
// private data, so fields that carry them are redacted unless logging.logPrompts is on.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import type { LoggingConfig } from '../config/index.ts';

export type { Logger } from 'pino';

/** Fields that hold prompt or completion text in request bodies, chunks and our own log calls. */
export const PRIVATE_FIELDS = ['messages', 'prompt', 'input', 'completion', 'content', 'text', 'choices', 'delta', 'tool_calls', 'arguments'] as const;

/**
 * pino redact paths (fast-redact syntax: no recursive wildcard, so three depths are listed;
 * that covers `{ body: { messages } }` and `{ req: { body: { prompt } } }`).
 */
export const REDACT_PATHS: readonly string[] = PRIVATE_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

export interface CreateLoggerOptions {
  /** Where lines go (default stdout). Tests pass a stream to read them back. */
  destination?: DestinationStream;
  /** Overrides the TTY check behind `pretty: auto`. */
  isTTY?: boolean;
  /** Bound on every line, e.g. 'gateway' or 'worker'. */
  name?: string;
}

function censor(value: unknown): string {
  // Say how much was hidden: "was the prompt empty?" is a common debugging question.
  const len = typeof value === 'string' ? value.length : JSON.stringify(value ?? null).length;
  return `[redacted ${len} chars; logging.logPrompts shows it]`;
}

export function createLogger(cfg: Readonly<LoggingConfig>, opts: CreateLoggerOptions = {}): Logger {
  const options: LoggerOptions = {
    level: cfg.level,
    ...(opts.name === undefined ? {} : { name: opts.name }),
    ...(cfg.logPrompts ? {} : { redact: { paths: [...REDACT_PATHS], censor } }),
  };
  const tty = opts.isTTY ?? process.stdout.isTTY === true;
  const wantPretty = cfg.pretty === 'auto' ? tty : cfg.pretty;
  if (wantPretty) {
    // In-process pino-pretty (no transport worker thread): the terminal case is one person
    // watching, where throughput does not matter and a thread would only add start-up time.
    const stream = pretty({
      colorize: tty,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      sync: true,
      ...(opts.destination === undefined ? {} : { destination: opts.destination as NodeJS.WritableStream }),
    });
    return pino(options, stream);
  }
  return opts.destination === undefined ? pino(options) : pino(options, opts.destination);
}

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * fastify genReqId: reuse a caller's X-Request-Id (a proxy or client tracing one request across
 * systems) when it is a plain token, otherwise mint one. Never trust it into logs unchecked.
 */
export function genReqId(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  const given = Array.isArray(h) ? h[0] : h;
  return given !== undefined && SAFE_ID.test(given) ? given : randomUUID();
}

/**
 * Options to spread into `fastify({...})`: our logger and request ids, which fastify puts on every
 * line of a request as `reqId` (its default label; setting it at the top level is deprecated since
 * fastify 5.12). Pair with echoRequestId(app) so clients can quote the id in a bug report.
 */
export function fastifyLogging(logger: Logger): {
  loggerInstance: Logger;
  genReqId: (req: IncomingMessage) => string;
} {
  return { loggerInstance: logger, genReqId };
}

/** Sends the request id back as X-Request-Id on every response. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function echoRequestId(app: FastifyInstance<any, any, any, any, any>): void {
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
}
