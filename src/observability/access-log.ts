import type { FastifyInstance, FastifyRequest } from 'fastify';

// One access-log line per request, at info, when the response has gone out (fastify's onResponse
// hook: after the last byte, streams included). It says what an operator needs to see a client
// failing (issue 21: a 4xx showed only in /metrics): the route *pattern* (never the raw URL, whose
// ids and query strings may carry user data), status, milliseconds, the tokens when the route knew
// them, and which client sent it (the product token of its User-Agent). Never a body, a prompt, a
// header value beyond that product token, a key or the Authorization header.

/** Where lines go: the gateway's pino logger (or anything with pino's info signature). */
export interface AccessLogSink {
  info(obj: object, msg: string): void;
}

interface Usage {
  readonly prompt: number;
  readonly completion: number;
}

const usage = new WeakMap<FastifyRequest, Usage>();

/** A generating route reports its token counts for the request's access-log line. */
export function noteUsage(req: FastifyRequest, promptTokens: number, completionTokens: number): void {
  usage.set(req, { prompt: promptTokens, completion: completionTokens });
}

// "claude-cli/2.1.3 (external, cli)" → claude-cli/2.1.3; "OpenAI/JS 6.1.0" → OpenAI/JS 6.1.0 (the
// Stainless SDKs put a space before the version); "ollama-js/0.5.16 (x64 linux ...)" → ollama-js/0.5.16.
const CLIENT = /^([A-Za-z][A-Za-z0-9._+-]{0,63})(?:\/(?:(JS|Python|Go|Java|Kotlin|Ruby|CSharp|PHP) ([0-9][A-Za-z0-9._+-]{0,31})|([A-Za-z0-9._+-]{1,32})))?/;

/** The client's name and version from a User-Agent header (null when there is none to read). */
export function clientName(ua: string | readonly string[] | undefined): string | null {
  const s = (Array.isArray(ua) ? ua[0] : ua) as string | undefined;
  if (s === undefined) return null;
  const m = CLIENT.exec(s.trim());
  if (m === null) return null;
  if (m[2] !== undefined) return `${m[1]}/${m[2]} ${m[3]}`;
  return m[4] === undefined ? m[1]! : `${m[1]}/${m[4]}`;
}

function line(log: AccessLogSink, req: FastifyRequest, status: number, ms: number, aborted: boolean): void {
  const u = usage.get(req);
  log.info(
    {
      reqId: req.id,
      method: req.method,
      // The pattern fastify matched (/v1/responses/:id); null for a URL no route serves.
      route: req.routeOptions.url ?? null,
      status,
      ms: Math.round(ms * 10) / 10,
      ...(u === undefined ? {} : { prompt_tokens: u.prompt, completion_tokens: u.completion }),
      client: clientName(req.headers['user-agent']),
      ...(aborted ? { aborted: true } : {}),
    },
    'request',
  );
}

export function registerAccessLog(app: FastifyInstance, log: AccessLogSink): void {
  app.addHook('onRequest', async (req, reply) => {
    const started = performance.now();
    // A client that leaves before the response ends (an agent cancelling a long stream) gets no
    // onResponse; it still gets its line, as nginx's 499.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) line(log, req, 499, performance.now() - started, true);
    });
  });
  app.addHook('onResponse', async (req, reply) => line(log, req, reply.statusCode, reply.elapsedTime, false));
}
