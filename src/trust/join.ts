// The worker's side of joining (issue 14): the cluster token only buys a credential. With it the
// worker connects as the join user (which may publish nothing but a join request), sends the
// public half of an nkey pair it made itself, and waits for the gateway to admit that key; then
// it connects again as its own nkey user and never uses the token on the bus again. Nothing
// secret crosses the bus: the seed stays here, the token is checked by nats-server itself.
// Workers outlive the gateway (issue 20): a server that is not there yet, or is down, is waited
// for forever (capped, jittered backoff); a credential the server refuses later (a restarted
// `hearth up` never admitted this nkey, or the gateway forgot a node lost for a minute) is replaced
// by joining again with the token, which the worker keeps. Only the gateway's own refusal of that
// join (a node it distrusts: its work failed a spot check) ends the worker.

import { HearthError, isHearthError } from '../errors/index.ts';
import { NatsBus, createUserNkey, type BusCredential, type NatsBusOptions } from '../bus/index.ts';
import { RateLimitedWarning, backoffMs } from '../bus/backoff.ts';
import { subjects, type WireMessage } from '../bus/contract.ts';
import { SILENT_LOG, type Log } from '../bus/types.ts';
import { DEFAULT_ANNOUNCE_WITHIN_MS } from './authority.ts';
import { JOIN_USER } from './permissions.ts';

export interface JoinOptions {
  readonly servers: string;
  readonly token: string;
  readonly cluster: string;
  readonly id: string;
  readonly name: string;
  readonly tls?: NatsBusOptions['tls'];
  readonly log?: Log;
  /** Resend the request this often until a gateway answers (default 2 s). */
  readonly retryMs?: number;
  /** Say so when no gateway has answered within this (default 5 s). */
  readonly noticeMs?: number;
  /** Give up after this long (default: never). */
  readonly timeoutMs?: number;
}

/**
 * Returns the nkey seed of this node's own credential, or null when the server has no join user
 * (a nats-server configured with the one shared token, e.g. `hearth gateway` against a server
 * of the operator's own): then the caller connects with the token as before.
 */
export async function joinForCredential(o: JoinOptions): Promise<string | null> {
  const log = o.log ?? SILENT_LOG;
  let bus: NatsBus;
  for (let attempt = 1; ; attempt++) {
    try {
      bus = await connectPatiently(() => NatsBus.connect({ servers: o.servers, name: `hearth-join ${o.name}`, user: JOIN_USER, pass: o.token, log, ...(o.tls !== undefined ? { tls: o.tls } : {}) }), log);
      break;
    } catch (e) {
      if (!isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED')) throw e;
      // Refused as the join user: a server without one (the operator's own, one shared token) takes
      // the token itself. A server that has one refuses both for a moment while it reloads its users
      // for another node's admission (seen in CI: two workers started together, the second exited
      // "rejected the credential" because its join landed in the first one's reload): try again.
      if (await tokenAccepted(o, log)) return null;
      if (attempt >= JOIN_USER_ATTEMPTS) throw e;
      log.warn({ attempt }, 'the server refused the join user and the token for now; trying again');
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  const key = createUserNkey();
  try {
    return await new Promise<string>((resolve, reject) => {
      const t0 = Date.now();
      let noticed = false;
      const send = (): void => {
        if (!noticed && Date.now() - t0 >= (o.noticeMs ?? 5000)) {
          noticed = true;
          const waited = Math.round((Date.now() - t0) / 1000);
          log.warn({ cluster: o.cluster, waitedMs: Date.now() - t0 },
            `no gateway of cluster "${o.cluster}" has been heard from in ${waited} s (it has not answered the join request); still waiting. ` +
              'Is a gateway running with this cluster name? Its join line shows the name (--cluster NAME); a different name means this worker waits forever');
        }
        if (o.timeoutMs !== undefined && Date.now() - t0 > o.timeoutMs) {
          done();
          reject(new HearthError('HEARTH_ERR_NODE_UNAUTHORIZED', [o.name, `no gateway of cluster "${o.cluster}" answered the join request within ${o.timeoutMs} ms`]));
          return;
        }
        bus.publish(subjects.join(o.cluster), { t: 'join', id: o.id, name: o.name, nkey: key.publicKey });
      };
      const unsub = bus.subscribe(subjects.joined(o.cluster, o.id), (m: WireMessage) => {
        if (m.t !== 'joined' || m.id !== o.id) return;
        done();
        if (m.ok) resolve(key.seed);
        else reject(new JoinRefusedError(o.name, m.error ?? 'no reason given'));
      });
      const timer = setInterval(send, o.retryMs ?? 2000);
      const done = (): void => { clearInterval(timer); unsub(); };
      // Subscribe before the first request goes out (the answer may be quick).
      void bus.flush().then(send, send);
    });
  } finally {
    await bus.close();
  }
}

/** Join-user refusals (with the token refused too) tried before giving up: ~5 s in all. */
const JOIN_USER_ATTEMPTS = 4;

/** Whether the server takes the token on its own (it has no join user). */
async function tokenAccepted(o: JoinOptions, log: Log): Promise<boolean> {
  try {
    const bus = await NatsBus.connect({ servers: o.servers, name: `hearth-join ${o.name}`, token: o.token, log, ...(o.tls !== undefined ? { tls: o.tls } : {}) });
    await bus.close();
    return true;
  } catch (e) {
    if (isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED')) return false;
    throw e;
  }
}

/** The gateway itself answered a join with no (a node it distrusts, an id taken, too many nodes):
 *  asking again would get the same answer. */
export class JoinRefusedError extends HearthError {
  constructor(name: string, readonly reason: string) {
    super('HEARTH_ERR_NODE_UNAUTHORIZED', [name, `the gateway refused to admit this node: ${reason}`]);
  }
}

export interface NodeConnectOptions extends JoinOptions {
  /** The bus connection's name (nats-server monitoring). */
  readonly busName: string;
  /** An nkey seed the operator provisioned (--nkey-seed): used as is, never replaced. */
  readonly nkeySeed?: string;
}

/**
 * A worker's bus: waits for the server however long it takes, joins with the token for a
 * credential of its own (or connects with the token itself where the server has no join user, or
 * with a provisioned seed), and — when it holds the token — renews that credential whenever the
 * server refuses it later (rejoinOnRefusal). Throws only what waiting cannot fix: the gateway's
 * refusal, a refused token or seed, a TLS failure.
 */
export async function connectNode(o: NodeConnectOptions): Promise<NatsBus> {
  const log = o.log ?? SILENT_LOG;
  const fixed = o.nkeySeed ?? '';
  const canRejoin = o.token !== '' && fixed === '';
  for (let round = 0; ; round++) {
    const seed = fixed !== '' || o.token === '' ? fixed : (await joinForCredential(o)) ?? '';
    if (seed !== '' && fixed === '') log.info({ id: o.id }, 'admitted by the gateway: connected with this node\'s own credential');
    const useToken = seed === '';
    const connect = (): Promise<NatsBus> => NatsBus.connect({
      servers: o.servers, name: o.busName, log,
      ...(useToken && o.token !== '' ? { token: o.token } : {}),
      ...(seed !== '' ? { nkeySeed: seed } : {}),
      ...(o.tls !== undefined ? { tls: o.tls } : {}),
      ...(canRejoin ? { renew: rejoinOnRefusal(o, useToken ? 'token' : 'nkey') } : {}),
    });
    // Right after admission the server may be slow to take the new credential (a reload for
    // another node's join; a loaded machine slow to sign the nonce reads as an auth refusal):
    // the same credential is tried a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        return await connectPatiently(connect, log);
      } catch (e) {
        const fresh = seed !== '' && fixed === '';
        if (!fresh || !isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED')) throw e;
        if (attempt >= 4) {
          // Still refused (a server restarted between the join and now): the gateway revokes an
          // admission that never announces within a few seconds, after which this id may join again.
          log.warn({ round, err: (e as Error).message }, 'the server refused the credential it was just given; joining again');
          await new Promise((r) => setTimeout(r, DEFAULT_ANNOUNCE_WITHIN_MS + backoffMs(round, 1000, 30_000)));
          break;
        }
        log.warn({ attempt, err: (e as Error).message }, 'connecting with the new credential failed; trying again');
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
}

const WAIT_MIN_MS = 250;
const WAIT_MAX_MS = 5000;

/**
 * Connects, and while the server cannot be reached (not started yet, restarting, a network
 * outage) tries again forever: capped, jittered backoff, logged once and then every 30 s. A
 * refused credential, a TLS failure or any other error is thrown at once.
 */
export async function connectPatiently(connect: () => Promise<NatsBus>, log: Log): Promise<NatsBus> {
  const warn = new RateLimitedWarning(log);
  for (let attempt = 0; ; attempt++) {
    try {
      return await connect();
    } catch (e) {
      if (!isHearthError(e, 'HEARTH_ERR_BUS_CONNECT')) throw e;
      warn.note({ err: (e as Error).message }, 'the NATS server cannot be reached yet; trying again (forever, every 5 s at most)');
      await new Promise((r) => setTimeout(r, backoffMs(attempt, WAIT_MIN_MS, WAIT_MAX_MS)));
    }
  }
}

/**
 * What a worker's bus does when the server refuses its credential on a reconnect (NatsBus's
 * `renew`): join again with the token for a new nkey credential. `start` is what the bus connected
 * with: with the token itself (a server of the operator's own, no join user) a refusal means the
 * token changed, and nothing can be done. The gateway's refusal of the join (JoinRefusedError: a
 * node it distrusts) is final too. Renewals that follow one another within a minute back off (1 s
 * doubling to 30 s), so a credential that keeps being refused never turns into a tight join loop.
 */
export function rejoinOnRefusal(o: JoinOptions, start: 'nkey' | 'token'): (refusal: Error) => Promise<BusCredential> {
  const log = o.log ?? SILENT_LOG;
  let usingToken = start === 'token';
  let streak = 0;
  let lastAt = 0;
  return async (refusal) => {
    if (usingToken) {
      throw new HearthError('HEARTH_ERR_NODE_UNAUTHORIZED', [o.name, `the NATS server at ${o.servers} refused the cluster token (${refusal.message}); was the token changed?`]);
    }
    streak = Date.now() - lastAt < 60_000 ? streak + 1 : 0;
    const waitMs = streak === 0 ? 0 : backoffMs(streak - 1, 1000, 30_000);
    log.warn({ err: refusal.message, waitMs },
      'the NATS server refused this node\'s credential (a restarted server that never admitted it, or a gateway that forgot this node): joining again with the cluster token');
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    let seed: string | null;
    for (let tries = 0; ; tries++) {
      try {
        seed = await joinForCredential(o);
        break;
      } catch (e) {
        // Only distrust is final. Any other no (this id still held under the old key, until the
        // gateway forgets it; too many nodes) may change: ask again, backing off.
        if (!(e instanceof JoinRefusedError) || /^distrusted\b/.test(e.reason)) throw e;
        const wait = backoffMs(tries, 1000, 30_000);
        log.warn({ reason: e.reason, waitMs: wait }, 'the gateway did not admit this node again yet; asking again');
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    lastAt = Date.now();
    if (seed === null) {
      usingToken = true;
      log.warn({}, 'the server has no join user: reconnecting with the cluster token itself');
      return { token: o.token };
    }
    log.info({ id: o.id }, 'admitted again by the gateway: reconnecting with this node\'s new credential');
    return { nkeySeed: seed };
  };
}
