// TLS for the bus when NATS listens beyond loopback (issue 14): `hearth up` makes a CA of its own
// (kept in its state dir, so the pin in the join line stays valid across restarts), signs a
// server certificate for the addresses workers dial, and prints the CA's SHA-256 in the join
// line. A joining worker fetches the chain the server presents, keeps the certificate whose
// fingerprint is the pin, and from then on verifies the server against it like any CA — no
// file to copy between devices, and a man in the middle cannot present a chain to that CA.
// Keys and certificates come from the openssl command line (Node can verify X.509 but not make
// it); EC P-256, the CA valid 10 years, the server certificate 825 days (what browsers accept).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP, connect as tcpConnect } from 'node:net';
import path from 'node:path';
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';
import { HearthError } from '../errors/index.ts';

export interface ClusterTls {
  readonly caFile: string;
  /** Server certificate followed by the CA (the chain the server presents: the pin is found there). */
  readonly certFile: string;
  readonly keyFile: string;
  /** SHA-256 of the CA certificate (DER), lowercase hex: what the join line pins. */
  readonly caSha256: string;
}

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new HearthError('HEARTH_ERR_STARTUP', [`making the cluster's TLS certificate failed (openssl ${args[0]}): ${err.stderr?.toString().trim().split('\n').pop() ?? err.message}`]);
  }
}

export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
}

/**
 * The CA in `dir` (made on first use) and a server certificate for `hosts` (IP addresses and
 * names), re-issued when the host list changes. Private keys are written 0600.
 */
export function ensureClusterTls(dir: string, hosts: readonly string[]): ClusterTls {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca-key.pem');
  const key = path.join(dir, 'server-key.pem');
  const cert = path.join(dir, 'server.pem');
  const chain = path.join(dir, 'server-chain.pem');
  const hostsFile = path.join(dir, 'server-hosts');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!existsSync(ca) || !existsSync(caKey)) {
    openssl(['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '3650', '-subj', '/CN=hearth cluster CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  }
  const want = [...new Set(hosts)].sort().join(',');
  const have = existsSync(hostsFile) ? readFileSync(hostsFile, 'utf8') : '';
  if (have !== want || !existsSync(chain) || !existsSync(key)) {
    const csr = path.join(dir, 'server.csr');
    const ext = path.join(dir, 'server.ext');
    const san = [...new Set(hosts)].map((h) => (isIP(h) !== 0 ? `IP:${h}` : `DNS:${h}`)).join(',');
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    openssl(['req', ...ec, '-keyout', key, '-out', csr, '-subj', '/CN=hearth nats'], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '825', '-extfile', ext], dir);
    writeFileSync(chain, readFileSync(cert, 'utf8') + readFileSync(ca, 'utf8'));
    writeFileSync(hostsFile, want);
  }
  return { caFile: ca, certFile: chain, keyFile: key, caSha256: fingerprintOf(readFileSync(ca, 'utf8')) };
}

/**
 * Connects to a NATS server (nats://host:port), reads its INFO line, starts TLS without trusting
 * anything yet, and returns the PEM of the certificate in the presented chain whose SHA-256 is
 * `pin`. Throws when there is none: that server is not the one the join line names.
 */
export async function fetchPinnedCa(server: string, pin: string, timeoutMs = 10_000): Promise<string> {
  const want = pin.replace(/:/g, '').toLowerCase();
  const u = new URL(server.replace(/^tls:/, 'nats:'));
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || '4222');
  return new Promise<string>((resolve, reject) => {
    const fail = (why: string): void => { clearTimeout(timer); sock.destroy(); reject(new HearthError('HEARTH_ERR_BUS_CONNECT', [server, why])); };
    const timer = setTimeout(() => fail('no TLS handshake within the time limit'), timeoutMs);
    const sock = tcpConnect({ host, port });
    let info = '';
    sock.on('error', (e) => fail(e.message));
    const onData = (d: Buffer): void => {
      info += d.toString('latin1');
      if (!info.includes('\r\n')) return;
      sock.off('data', onData);
      if (!/"tls_required"\s*:\s*true/.test(info)) { fail('the server does not offer TLS, but the join line pins a CA (--ca-sha256)'); return; }
      const t = tlsConnect({ socket: sock, rejectUnauthorized: false, ...(isIP(host) === 0 ? { servername: host } : {}) });
      t.on('error', (e) => fail(e.message));
      t.once('secureConnect', () => {
        let c: DetailedPeerCertificate | undefined = t.getPeerCertificate(true);
        const seen = new Set<string>();
        while (c !== undefined && c.raw !== undefined && !seen.has(c.fingerprint256)) {
          seen.add(c.fingerprint256);
          if (c.fingerprint256.replace(/:/g, '').toLowerCase() === want) {
            const b64 = c.raw.toString('base64').replace(/.{64}/g, '$&\n');
            clearTimeout(timer);
            t.destroy();
            resolve(`-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`);
            return;
          }
          c = c.issuerCertificate;
        }
        t.destroy();
        fail(`no certificate the server presented has the pinned SHA-256 ${want.slice(0, 16)}…: this is not the cluster the join line names`);
      });
    };
    sock.on('data', onData);
  });
}
