// The Bus over a NATS server — the only file in hearth that imports @nats-io/*.
// Auth is the server's: a shared token or an nkey (deploy/nats-server.conf shows both); TLS is one
// option (`tls: { caFile, certFile?, keyFile? }`, or `true` for the system CAs). The connection
// reconnects forever with capped, jittered exponential backoff, so a nats-server restart is
// survived: nats.js re-sends our subscriptions on reconnect and buffers publishes meanwhile.
// A server that comes back without our credential (a restarted `hearth up` that never admitted our
// nkey) is survived too when the owner says how to get a new one (`renew`, issue 20): the
// connection keeps reconnecting, and its next attempts present the renewed credential.

import { connect } from '@nats-io/transport-node';
import {
  AuthorizationError, UserAuthenticationExpiredError, nkeyAuthenticator, nkeys, tokenAuthenticator,
  type Auth, type NatsConnection, type Subscription,
} from '@nats-io/nats-core';
import { HearthError } from '../errors/index.ts';
import { RateLimitedWarning, backoffMs } from './backoff.ts';
import { FramedBus } from './framed-bus.ts';
import { NatsKv, type KvBucketOptions } from './nats-kv.ts';
import type { Log } from './types.ts';

export interface NatsBusOptions {
  /** nats://host:port (or several, comma-separated). */
  readonly servers: string;
  /** Shared token (nats-server `authorization { token }`). */
  readonly token?: string;
  /** nkey seed ("SU…") for nkey auth instead of a token. */
  readonly nkeySeed?: string;
  /** User + password (the join user of a `hearth up` server: password = the cluster token). */
  readonly user?: string;
  readonly pass?: string;
  /** TLS: true = verify against the system CAs; an object names the PEM files. */
  readonly tls?: boolean | { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
  /** Connection name shown by the server's monitoring (e.g. "hearth-worker laptop"). */
  readonly name: string;
  readonly log?: Log;
  /** Connect timeout for the first attempt (ms). */
  readonly timeoutMs?: number;
  /**
   * Called when the server refuses this connection's credential on a reconnect (a restarted server
   * that does not know our nkey, or a revoked credential). Resolves with the credential the next
   * attempts present (the connection, its subscriptions and its buffered publishes go on), or
   * rejects to give up: the connection closes and closed() resolves with that error. Without it, a
   * refused credential closes the connection at the second refusal (nats.js's rule).
   */
  readonly renew?: (refusal: Error) => Promise<BusCredential>;
}

/** What a renewed connection presents: an nkey seed of its own, or the shared token. */
export type BusCredential = { readonly nkeySeed: string } | { readonly token: string };

/** Backoff between reconnect attempts: 100 ms doubling to 2 s, jittered (backoff.ts). */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;

export class NatsBus extends FramedBus {
  private readonly subs = new Set<Subscription>();
  /** Why we closed the connection ourselves (a renewal that gave up). */
  private gaveUp: Error | undefined;

  private constructor(private readonly nc: NatsConnection, log?: Log) {
    super(nc.info?.max_payload ?? 1024 * 1024, log);
  }

  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    let attempt = 0;
    let nc: NatsConnection;
    // With `renew`, the credential is read at every (re)connect: renewal swaps it in place.
    let cred: BusCredential | null = opts.renew === undefined ? null
      : opts.nkeySeed !== undefined ? { nkeySeed: opts.nkeySeed } : opts.token !== undefined ? { token: opts.token } : null;
    // The credential the latest attempt presented: a refusal of one that renewal has replaced
    // since (an attempt already under way) is stale, and must not start another renewal.
    let presented: BusCredential | null = cred;
    const dynamic = (nonce?: string): Auth => {
      const c = cred;
      presented = c;
      if (c === null) return undefined as unknown as Auth;
      return 'nkeySeed' in c ? nkeyAuthenticator(new TextEncoder().encode(c.nkeySeed))(nonce) : tokenAuthenticator(c.token)(nonce);
    };
    try {
      nc = await connect({
        servers: opts.servers.split(',').map((s) => s.trim()).filter((s) => s !== ''),
        name: opts.name,
        ...(cred !== null ? { authenticator: dynamic, ignoreAuthErrorAbort: true } : {
          ...(opts.token !== undefined && opts.nkeySeed === undefined && opts.user === undefined ? { token: opts.token } : {}),
          ...(opts.user !== undefined && opts.nkeySeed === undefined ? { user: opts.user, pass: opts.pass ?? '' } : {}),
          ...(opts.nkeySeed !== undefined ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(opts.nkeySeed)) } : {}),
        }),
        ...(opts.tls === true ? { tls: {} } : typeof opts.tls === 'object' ? { tls: { ...opts.tls } } : {}),
        maxReconnectAttempts: -1,
        reconnectTimeWait: BACKOFF_MIN_MS,
        reconnectDelayHandler: () => backoffMs(attempt++, BACKOFF_MIN_MS, BACKOFF_MAX_MS),
        timeout: opts.timeoutMs ?? 5000,
        // Activations are hot-path traffic: don't wait for PING round trips to notice a dead server.
        pingInterval: 10_000,
        maxPingOut: 3,
      });
    } catch (e) {
      throw mapConnectError(e, opts);
    }
    const bus = new NatsBus(nc, opts.log);
    const renew = opts.renew;
    void bus.watch(() => { attempt = 0; }, renew === undefined || cred === null ? null : async (refusal) => {
      if (presented !== cred) return;
      cred = await renew(refusal);
      attempt = 0; // the renewed credential is tried soon
    });
    return bus;
  }

  /** Follows the connection's status; `renew` (when given) runs once per refusal, one at a time:
   *  the attempts made meanwhile are refused again and ignored. */
  private async watch(onReconnect: () => void, renew: ((refusal: Error) => Promise<void>) | null): Promise<void> {
    const down = new RateLimitedWarning(this.log);
    let renewing = false;
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') { this.log.warn({ server: s.server }, 'NATS disconnected; reconnecting'); this.emitStatus('disconnected', String(s.server)); }
      else if (s.type === 'reconnecting') { down.note({}, 'NATS still unreachable; reconnecting (forever, every 2 s at most)'); this.emitStatus('reconnecting', ''); }
      else if (s.type === 'reconnect') { down.reset(); onReconnect(); this.log.info({ server: s.server }, 'NATS reconnected'); this.emitStatus('reconnected', String(s.server)); }
      else if (s.type === 'error') {
        // An "Authentication Timeout" is a slow handshake (a loaded machine signing the nonce), not a
        // refusal: the next attempt may well pass with the same credential.
        const refused = (s.error instanceof AuthorizationError && !/authentication timeout/i.test(s.error.message)) || s.error instanceof UserAuthenticationExpiredError;
        if (!refused || renew === null) { this.log.warn({ err: String(s.error) }, 'NATS error'); continue; }
        if (renewing) continue;
        renewing = true;
        renew(s.error).then(() => { renewing = false; }, (e: unknown) => {
          this.gaveUp = e instanceof Error ? e : new Error(String(e));
          void this.nc.close();
        });
      }
    }
  }

  protected publishRaw(subject: string, frame: Uint8Array): void {
    // Fire and forget, also once the server has closed us for good (a revoked credential): the
    // node's goodbye then goes nowhere instead of throwing out of its shutdown.
    if (this.nc.isClosed()) return;
    this.nc.publish(subject, frame);
  }

  protected subscribeRaw(subject: string, onFrame: (frame: Uint8Array, subject: string) => void): () => void {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) { this.log.warn({ subject, err: err.message }, 'subscription error'); return; }
        onFrame(msg.data, msg.subject);
      },
    });
    this.subs.add(sub);
    return () => { this.subs.delete(sub); sub.unsubscribe(); };
  }

  /** Resolves when the connection is closed for good: by close(), or by the server (a revoked
   *  credential is refused on every reconnect, and nats.js gives up on a repeated auth error). */
  async closed(): Promise<Error | undefined> {
    const e = await this.nc.closed();
    return this.gaveUp ?? (e === undefined ? undefined : e);
  }

  /** A JetStream KV bucket on this connection (rejects when the server runs without JetStream). */
  openKv(opts: KvBucketOptions): Promise<NatsKv> {
    return NatsKv.open(this.nc, opts);
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
    this.emitStatus('closed', '');
  }
}

/** A fresh user nkey pair (Ed25519): the public key ("U…") is registered with the server, the
 *  seed ("SU…") stays with whoever made it. */
export function createUserNkey(): { publicKey: string; seed: string } {
  const kp = nkeys.createUser();
  return { publicKey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

/** Whether a string is a well-formed public user nkey (checksum included). */
export function isUserNkey(key: string): boolean {
  try {
    return key.startsWith('U') && nkeys.fromPublic(key).getPublicKey() === key;
  } catch {
    return false;
  }
}

function mapConnectError(e: unknown, opts: NatsBusOptions): Error {
  const err = e as Error;
  const chain = `${err.message} ${String((err as { cause?: unknown }).cause ?? '')}`;
  if (e instanceof AuthorizationError || /authoriz|authenticat/i.test(chain)) {
    const how = opts.nkeySeed !== undefined ? 'check the nkey seed' : opts.token !== undefined ? 'check --token' : 'the server requires a token (--token)';
    return new HearthError('HEARTH_ERR_NODE_UNAUTHORIZED', [opts.name, `the NATS server at ${opts.servers} rejected the credential (${how})`], { cause: e });
  }
  return new HearthError('HEARTH_ERR_BUS_CONNECT', [opts.servers, err.message], { cause: e });
}
