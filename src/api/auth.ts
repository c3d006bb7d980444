import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HearthError } from '../errors/index.ts';

// API keys. OpenAI clients send `Authorization: Bearer <key>`; Azure-style clients send `api-key`,
// some others `x-api-key`: all three are read. Keys are compared as SHA-256 digests with
// timingSafeEqual, so neither the length nor a prefix of a key leaks through response timing.
// The key a request was admitted with also names the owner of what it stores (ownerOf).

/** Routes that never need a key: probes, the API's own documentation, and the workers' weights
 *  routes (they check the cluster token themselves). */
const PUBLIC_PREFIXES = ['/health', '/ready', '/openapi.json', '/docs', '/internal/weights'];

export interface RouteAuthConfig {
  /** Set on a route (extraRoutes) that must answer without a key. */
  readonly public?: boolean;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Owners of admitted requests, set by the auth hook (absent when auth is off). */
const owners = new WeakMap<FastifyRequest, string>();

/** The owner when no keys are configured: every client is the same one. */
export const ANONYMOUS_OWNER = 'anonymous';

/**
 * Who a request acts for, for what it stores (stored Responses): a hash of its API key, never the
 * key itself (the owner names NATS KV buckets every gateway can list), or ANONYMOUS_OWNER when auth
 * is off. Domain-separated from the digest keys are compared with, so neither reveals the other.
 */
export function ownerOf(req: FastifyRequest): string {
  return owners.get(req) ?? ANONYMOUS_OWNER;
}

/** The owner a request with API key `key` acts for (what ownerOf gives it). */
export function ownerHash(key: string): string {
  return createHash('sha256').update(`hearth response owner\0${key}`).digest('hex').slice(0, 32);
}

export function presentedKey(headers: FastifyRequest['headers']): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m !== null) return m[1]!.trim();
  }
  for (const h of ['api-key', 'x-api-key']) {
    const v = headers[h];
    if (typeof v === 'string' && v !== '') return v.trim();
  }
  return undefined;
}

/** An onRequest hook refusing requests without a valid key (no-op when no keys are configured). */
export function createAuthHook(keys: readonly string[]): ((req: FastifyRequest) => Promise<void>) | null {
  if (keys.length === 0) return null;
  const digests = keys.map(digest);
  return async (req) => {
    const path = req.url.split('?', 1)[0]!;
    if (PUBLIC_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`))) return;
    if ((req.routeOptions.config as RouteAuthConfig | undefined)?.public === true) return;
    const key = presentedKey(req.headers);
    if (key !== undefined) {
      const d = digest(key);
      // Compare against every key (no early exit) so timing does not say which one matched.
      let ok = false;
      for (const k of digests) ok = timingSafeEqual(d, k) || ok;
      if (ok) {
        owners.set(req, ownerHash(key));
        return;
      }
    }
    throw new HearthError('HEARTH_ERR_UNAUTHORIZED');
  };
}
