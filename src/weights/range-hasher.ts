// sha256 of byte ranges of files, in one worker thread, one range at a time (issue 20). The
// gateway hashes the tensors of every stage it serves; on its own event loop, all at once, a 16 GB
// checkpoint made heartbeats late (workers declared lost 13 s in) and every concurrent hash held
// its own 4 MB buffer (a 3B model's 250 tensors: ~1 GB of RSS on a gateway meant to stay small).
// The worker is plain JavaScript (eval), so it needs no TypeScript loader; it is unref'd while
// idle, so it never keeps a process alive.
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const buf = Buffer.allocUnsafe(4 << 20);
parentPort.on('message', ({ id, file, start, end }) => {
  let fd = -1;
  try {
    const h = crypto.createHash('sha256');
    fd = fs.openSync(file, 'r');
    for (let at = start; at < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - at), at);
      if (n <= 0) throw new Error(file + ' ends before byte ' + end);
      h.update(buf.subarray(0, n));
      at += n;
    }
    parentPort.postMessage({ id, sha256: h.digest('hex') });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
});
`;

interface Pending { readonly resolve: (sha: string) => void; readonly reject: (e: Error) => void }

let worker: Worker | null = null;
let nextId = 0;
const pending = new Map<number, Pending>();

function failAll(e: Error): void {
  for (const p of pending.values()) p.reject(e);
  pending.clear();
  worker = null;
}

function ensureWorker(): Worker {
  if (worker !== null) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true });
  w.on('message', (m: { id: number; sha256?: string; error?: string }) => {
    const p = pending.get(m.id);
    if (p === undefined) return;
    pending.delete(m.id);
    if (m.sha256 !== undefined) p.resolve(m.sha256);
    else p.reject(new Error(m.error ?? 'hash failed'));
    if (pending.size === 0) w.unref();
  });
  w.on('error', (e) => failAll(e));
  w.on('exit', () => failAll(new Error('the hashing thread exited')));
  worker = w;
  return w;
}

/** sha256 hex of bytes [start, end) of `file`, computed off the event loop; ranges queue in order. */
export function hashRange(file: string, start: number, end: number): Promise<string> {
  const w = ensureWorker();
  const id = nextId++;
  return new Promise<string>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, file, start, end });
  });
}
