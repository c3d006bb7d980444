import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

// Which MCP server URLs a client may make the gateway connect to. A client-given server_url is a
// request the gateway makes on the client's behalf (server-side request forgery, OWASP SSRF): it
// must not reach what only the gateway can reach — its own loopback services (the API itself, the
// private nats-server of `hearth up`, a local MCP server), this machine's other addresses, and
// link-local ones (169.254.169.254 is a cloud's metadata service). Other LAN hosts stay allowed:
// a home's tools (Home Assistant) live there. An operator-configured URL is allowed as it is.

/** Why `ip` is off limits to a client-given URL, or null when it may be reached. */
export function forbiddenAddress(ip: string, own: ReadonlySet<string> = ownAddresses()): string | null {
  let a = ip.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped !== null) a = mapped[1]!;
  if (isIP(a) === 4) {
    const [o1, o2] = a.split('.').map(Number) as [number, number];
    if (o1 === 127) return 'a loopback address';
    if (o1 === 0) return 'an unspecified address';
    if (o1 === 169 && o2 === 254) return 'a link-local address';
  } else {
    if (a === '::1') return 'a loopback address';
    if (a === '::') return 'an unspecified address';
    if (/^fe[89ab]/.test(a)) return 'a link-local address';
  }
  if (own.has(a)) return "one of the gateway's own addresses";
  return null;
}

/** This machine's interface addresses (read per check: interfaces come and go). */
export function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address.toLowerCase().replace(/%.*$/, ''));
  return out;
}

/** The form URLs are compared in (configured vs client-given): WHATWG-parsed, no trailing slash. */
export function normalUrl(u: string): string {
  try {
    return new URL(u).href.replace(/\/$/, '');
  } catch {
    return u;
  }
}

export class RefusedUrl extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedUrl';
  }
}

/**
 * Throws RefusedUrl when `url` is not http(s), or when its host resolves to an address a client may
 * not reach (every address it resolves to is checked). `configured` URLs pass unchecked.
 */
export async function checkClientUrl(url: string, configured: ReadonlySet<string>): Promise<URL> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RefusedUrl('is not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RefusedUrl(`uses ${u.protocol.replace(':', '')}; only http and https are allowed`);
  if (u.username !== '' || u.password !== '') throw new RefusedUrl('carries credentials; send them in headers');
  if (configured.has(normalUrl(u.href))) return u;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  let addrs: string[];
  try {
    addrs = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch {
    throw new RefusedUrl(`names a host that does not resolve (${host.slice(0, 80)})`);
  }
  const own = ownAddresses();
  for (const a of addrs) {
    const why = forbiddenAddress(a, own);
    if (why !== null) throw new RefusedUrl(`resolves to ${why} (${a}); only servers the operator configured may be reached there`);
  }
  return u;
}

type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * fetch for a client-given server: every request URL (the SSE transport POSTs to an endpoint the
 * server names) is checked again, and redirects are refused rather than followed to where the
 * first check never looked.
 */
export function guardedFetch(configured: ReadonlySet<string>): Fetch {
  return async (url, init) => {
    await checkClientUrl(String(url), configured);
    return fetch(url, { ...init, redirect: 'error' });
  };
}
