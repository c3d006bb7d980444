// Worker-thread entry for the gateway's one-time int4 build of a stage (issue 20): the graph
// builder is synchronous and quantizes for seconds to minutes, so it runs here, never on the event
// loop that answers /health and heartbeats. The thread builds one range into the shard cache
// (self-contained: no file refers back to the checkpoint) and posts the entry's key, then ends, so
// its scratch buffers go with it.

import { parentPort, workerData } from 'node:worker_threads';
import { openCheckpoint } from '../model/index.ts';
import type { Quant } from '../model/index.ts';
import type { KvDtype } from '../model/onnx/index.ts';
import { prepareShardFiles } from '../runtime/shard-files.ts';

export interface ShardBuildJob {
  readonly modelDir: string;
  readonly start: number;
  readonly end: number;
  readonly quant: Quant;
  readonly cacheDir: string;
  readonly int4Block: number;
  readonly kvDtype: KvDtype;
}

export type ShardBuildReply = { readonly ok: true; readonly key: string } | { readonly ok: false; readonly error: string };

const port = parentPort;
if (port === null) throw new Error('shard-serve-thread must run in a worker thread');
const job = workerData as ShardBuildJob;

async function build(): Promise<string> {
  const ckpt = openCheckpoint(job.modelDir, { range: [job.start, job.end] });
  try {
    const opts = { cacheDir: job.cacheDir, selfContained: true, buildThreads: 1, int4Block: job.int4Block, kvDtype: job.kvDtype, attention: 'auto' as const };
    // A cached entry is verified by finish(); a bad one is removed, and the second pass builds.
    for (let attempt = 0; attempt < 2; attempt++) {
      const files = await prepareShardFiles(ckpt, { start: job.start, end: job.end, quant: job.quant }, opts);
      // Nothing loads it here: "loaded" only tells finish() to store the build as an entry.
      const ok = await files.finish(true);
      if (ok && files.key !== undefined && files.cache !== 'error' && files.cache !== 'off') return files.key;
      if (files.cache === 'error') throw new Error(`the shard cache is unusable: ${files.cacheError ?? 'unknown'}`);
    }
    throw new Error('the cache entry failed its check twice');
  } finally {
    ckpt.close();
  }
}

build().then(
  (key) => port.postMessage({ ok: true, key } satisfies ShardBuildReply),
  (e: unknown) => port.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) } satisfies ShardBuildReply),
);
