// Worker-thread entry: owns the onnxruntime session and the KV cache of one shard engine.
// Messages are handled strictly in arrival order (a chain of promises), so a free() posted after
// a run() applies after it.

import { parentPort, workerData } from 'node:worker_threads';
import { isHearthError } from '../errors/index.ts';
import { buffersOf, type FromThread, type ThreadInit, type ToThread, type WireError } from './engine-protocol.ts';
import { ShardSession } from './shard-session.ts';

const port = parentPort;
if (!port) throw new Error('engine-thread must run in a worker thread');

const post = (m: FromThread, transfer: ArrayBuffer[] = []): void => {
  try {
    port.postMessage(m, transfer);
  } catch {
    port.postMessage(m); // a buffer that cannot move (external memory) is copied instead
  }
};

const wire = (e: unknown): WireError => ({
  code: isHearthError(e) ? e.code : null,
  message: e instanceof Error ? e.message : String(e),
});

const init = workerData as ThreadInit;
let session: ShardSession | null = null;
try {
  session = await ShardSession.create(init.dir, init.spec, init.opts);
  post({ op: 'ready', info: session.info });
} catch (e) {
  post({ op: 'init-error', error: wire(e) });
  port.close(); // ends the thread once the message is out
}

let chain: Promise<void> = Promise.resolve();
if (session) {
  const s = session;
  port.on('message', (m: ToThread) => {
    chain = chain.then(() => handle(s, m));
  });
}

async function handle(session: ShardSession, m: ToThread): Promise<void> {
  switch (m.op) {
    case 'free':
      session.kv.free(m.seq);
      return;
    case 'profile':
      post({ op: 'profile', id: m.id, file: session.endProfiling() });
      return;
    case 'close':
      await session.release();
      post({ op: 'closed', id: m.id });
      port?.close();
      return;
    case 'run':
      try {
        const results = await session.run(m.items);
        post({ op: 'result', id: m.id, results }, buffersOf(results.flatMap((r) => [r.hidden, r.logits])));
      } catch (e) {
        const seqs = new Set(m.items.map((it) => it.seq));
        post({ op: 'error', id: m.id, error: wire(e), lens: [...seqs].map((s) => [s, session.kv.length(s)] as const) });
      }
  }
}
