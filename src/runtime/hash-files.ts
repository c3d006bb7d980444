// sha256 of whole files, computed in a worker thread so it overlaps with work that blocks this
// thread (building a shard graph, onnxruntime's synchronous model load). The worker is plain
// JavaScript (eval), so it needs no TypeScript loader.

import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const buf = Buffer.allocUnsafe(4 << 20); // small: this runs while a shard loads, and counts in its peak RSS
const out = {};
for (const file of workerData.files) {
  try {
    const h = crypto.createHash('sha256');
    const fd = fs.openSync(file, 'r');
    try {
      for (let pos = 0; ; ) {
        const n = fs.readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        h.update(n === buf.length ? buf : buf.subarray(0, n));
        pos += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    out[file] = h.digest('hex');
  } catch (e) {
    out[file] = null;
  }
}
parentPort.postMessage(out);
`;

/**
 * Starts hashing `files` at once; resolves to file → sha256 hex (null for a file that could not be
 * read). Never rejects: a failed worker reports every file as null.
 */
export function hashFiles(files: readonly string[]): Promise<Map<string, string | null>> {
  const none = (): Map<string, string | null> => new Map(files.map((f) => [f, null]));
  if (files.length === 0) return Promise.resolve(new Map());
  return new Promise((resolve) => {
    let settled = false;
    const done = (m: Map<string, string | null>): void => {
      if (!settled) {
        settled = true;
        resolve(m);
      }
    };
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { files: [...files] } });
    } catch {
      done(none());
      return;
    }
    worker.once('message', (m: Record<string, string | null>) => done(new Map(files.map((f) => [f, m[f] ?? null]))));
    worker.once('error', () => done(none()));
    worker.once('exit', () => done(none()));
  });
}
