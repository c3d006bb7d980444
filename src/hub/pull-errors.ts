// Turns what fetch and @huggingface/hub throw into one-line HEARTH_ERR_PULL messages a person can act on.
import { HubApiError } from '@huggingface/hub';

import { HearthError, isHearthError } from '../errors/index.ts';

const NETWORK_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'CERT_HAS_EXPIRED']);

/** fetch's TypeError hides the socket error in `cause` (sometimes a level deeper, as AggregateError). */
export function networkReason(e: unknown): string | null {
  // WebBlob.stream() aborts its stream with the error's message alone (a string).
  if (typeof e === 'string') return /fetch failed|terminated|other side closed|socket/i.test(e) ? e : null;
  let cur = e as { code?: unknown; cause?: unknown; message?: unknown; errors?: unknown } | undefined;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 4; depth++) {
    if (typeof cur.code === 'string' && NETWORK_CODES.has(cur.code)) return cur.code;
    if (Array.isArray(cur.errors) && cur.errors.length > 0) cur = cur.errors[0] as typeof cur;
    else cur = cur.cause as typeof cur;
  }
  const msg = (e as Error | undefined)?.message ?? '';
  return e instanceof TypeError && /fetch failed|terminated|other side closed/.test(msg) ? ((e as Error & { cause?: Error }).cause?.message ?? msg) : null;
}

export function listingError(e: unknown, id: string, revision: string, endpoint: string): HearthError {
  if (isHearthError(e)) return e;
  const host = new URL(endpoint).host;
  const net = networkReason(e);
  if (net !== null) return new HearthError('HEARTH_ERR_PULL', [id, `cannot reach ${host}: ${net}; copy a checkpoint folder and pass --model DIR`], { cause: e });
  if (e instanceof HubApiError) {
    if (e.statusCode === 401 || e.statusCode === 403) {
      return new HearthError('HEARTH_ERR_PULL', [id, `${host} answered ${e.statusCode}: the model is gated or private; accept its terms on the Hub and set HF_TOKEN`], { cause: e });
    }
    if (e.statusCode === 404) return new HearthError('HEARTH_ERR_PULL', [id, `not found on ${host} (revision ${revision})`], { cause: e });
    return new HearthError('HEARTH_ERR_PULL', [id, `${host} answered ${e.statusCode}: ${e.message.split('. URL:')[0] ?? ''}`], { cause: e });
  }
  return new HearthError('HEARTH_ERR_PULL', [id, (e as Error).message], { cause: e });
}

export function downloadError(e: unknown, id: string, file: string): HearthError {
  if (isHearthError(e)) return e;
  const net = networkReason(e);
  const why = net ?? (e instanceof HubApiError ? `HTTP ${e.statusCode}` : (e as Error).message);
  return new HearthError('HEARTH_ERR_PULL', [id, `${file}: download interrupted (${why}); run the same command again to resume`], { cause: e });
}

/** Worth retrying in the same run: the network, not a checksum or a refusal. */
export function isRetryable(e: unknown): boolean {
  if (isHearthError(e)) return false;
  if (e instanceof HubApiError) return e.statusCode >= 500 || e.statusCode === 429;
  return networkReason(e) !== null;
}
