// The process-level guard of a gateway: what escapes every handler is logged and counted, never
// the end of the process.

/** The slice of pino's logger the guard uses. */
export interface GuardLog {
  error(obj: object, msg?: string): void;
}

/**
 * Keeps a gateway process serving when a rejection or exception escapes every handler: by
 * default Node exits, taking every stream (and, under `hearth up`, nats-server and the local
 * workers) with it — one malformed request did exactly that (issue 8, defect 1). Each such escape
 * is a bug: it is logged with its stack and counted as HEARTH_ERR_INTERNAL on /metrics. What was
 * in flight belongs to one request; the rest of the gateway's state is unaffected by it.
 * Returns the function that removes the guard (close()).
 */
export function guardProcess(log: GuardLog, count: () => void = () => undefined): () => void {
  const onRejection = (reason: unknown): void => {
    count();
    log.error({ err: reason }, 'unhandled promise rejection (a bug); the gateway keeps serving');
  };
  const onException = (err: Error, origin: string): void => {
    count();
    log.error({ err, origin }, 'uncaught exception (a bug); the gateway keeps serving');
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
