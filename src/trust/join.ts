// The worker's side of joining (issue 14): the cluster token only buys a credential. With it the
// worker connects as the join user (which may publish nothing but a join request), sends the
// public half of an nkey pair it made itself, and waits for the gateway to admit that key; then
// it connects again as its own nkey user and never uses the token on the bus again. Nothing
// secret crosses the bus: the seed stays here, the token is checked by nats-server itself.

import { HearthError, isHearthError } from '../errors/index.ts';
import { NatsBus, createUserNkey, type NatsBusOptions } from '../bus/index.ts';
import { subjects, type WireMessage } from '../bus/contract.ts';
import { SILENT_LOG, type Log } from '../bus/types.ts';
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
      bus = await NatsBus.connect({ servers: o.servers, name: `hearth-join ${o.name}`, user: JOIN_USER, pass: o.token, log, ...(o.tls !== undefined ? { tls: o.tls } : {}) });
      break;
    } catch (e) {
      if (isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED')) return null;
      // A server busy reloading (another node's join) may let a first connect time out.
      if (attempt >= 4 || !isHearthError(e, 'HEARTH_ERR_BUS_CONNECT')) throw e;
      log.warn({ attempt, err: (e as Error).message }, 'connecting to NATS failed; trying again');
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
        else reject(new HearthError('HEARTH_ERR_NODE_UNAUTHORIZED', [o.name, `the gateway refused to admit this node: ${m.error ?? 'no reason given'}`]));
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
