import type { IncomingMessage } from 'node:http';

// A body over the limit is answered with 413, but only after the client has finished sending it:
// a server that answers and closes while the client is still writing makes fetch-based clients
// (undici, the openai SDK) fail with EPIPE / "Connection error" and retry, never reading the 413.
// So the rest of the body is read and thrown away, up to a bound (and a time limit) past which the
// connection is closed after the answer: a client cannot make the server read forever.

/** Bytes read and discarded past the limit before giving up on the connection. */
export const DRAIN_BOUND_BYTES = 64 * 1024 * 1024;
/** Time allowed for the rest of the body to arrive. */
export const DRAIN_TIMEOUT_MS = 15_000;

/** Resolves true when the body was read to its end; false when the bound or the time ran out. */
export function drainBody(req: IncomingMessage, bound = DRAIN_BOUND_BYTES, timeoutMs = DRAIN_TIMEOUT_MS): Promise<boolean> {
  if (req.complete || req.destroyed) return Promise.resolve(req.complete);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > bound) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onErr);
      req.removeListener('close', onClose);
      if (!ok) req.pause();
      resolve(ok);
    };
    const onData = (b: Buffer): void => {
      seen += b.length;
      if (seen > bound) finish(false);
    };
    const onEnd = (): void => finish(true);
    const onErr = (): void => finish(false);
    const onClose = (): void => finish(req.complete);
    const timer = setTimeout(() => finish(false), timeoutMs);
    timer.unref();
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onErr);
    req.once('close', onClose);
    req.resume();
  });
}

/**
 * Closes the connection when the request body goes `idleMs` without a byte (issue 19: a body
 * sent one byte per 5 s held its socket forever). The socket's own inactivity timer is used, not
 * a 'data' listener (that would take the body from fastify's parser), and only until the body
 * has arrived: a stream being answered may be quiet for as long as the queue and prefill take.
 * The whole request's deadline is node's requestTimeout (app.ts).
 */
export function watchBodyIdle(req: IncomingMessage, idleMs: number): void {
  // Only a request with a body to wait for (GET and empty bodies have none).
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  if (req.complete || !hasBody) return;
  const socket = req.socket;
  // An injected request (fastify.inject, tests and in-process callers) has a socket stand-in with
  // no timers, and no peer that could drip a body.
  if (typeof socket?.setTimeout !== 'function') return;
  const onTimeout = (): void => {
    socket.destroy();
  };
  let watching = true;
  const done = (): void => {
    if (!watching) return;
    watching = false;
    socket.removeListener('timeout', onTimeout);
    // Back to no inactivity timer, unless node has set its own since (the keep-alive timeout
    // once the answer went out): that one must stay.
    if (socket.timeout === idleMs) socket.setTimeout(0);
  };
  socket.setTimeout(idleMs);
  socket.once('timeout', onTimeout);
  req.once('end', done);
  req.once('close', done);
}
