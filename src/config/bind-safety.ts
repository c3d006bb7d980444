// Safe default: an API that runs a model on the user's own hardware must not be open to the whole
// LAN by accident (llama.cpp RPC and vLLM users were told "isolated networks only"). Listening
// beyond loopback needs an API key, or an explicit --insecure.

import { isIP } from 'node:net';
import { HearthError } from '../errors/index.ts';
import type { HearthConfig } from './types.ts';

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** Throws HEARTH_ERR_CONFIG when the gateway would listen beyond loopback with no API key. */
export function checkBindSafety(cfg: Pick<Readonly<HearthConfig>, 'server'>): void {
  const { host, port, apiKeys, insecure } = cfg.server;
  if (isLoopbackHost(host) || apiKeys.length > 0 || insecure) return;
  const where = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  throw new HearthError('HEARTH_ERR_CONFIG', [
    `refusing to listen on ${where} (server.host) without an API key: anyone who can reach this address could use the model. ` +
      'Set server.apiKeys (e.g. HEARTH_API_KEYS=$(openssl rand -hex 24) or --api-key KEY) and send "Authorization: Bearer KEY", ' +
      'or keep server.host at 127.0.0.1, or pass --insecure (HEARTH_INSECURE=true) if every device on this network is trusted.',
  ]);
}
