// Child-process entry for the gateway's one-time int4 build of a stage (issue 20). The graph
// builder is synchronous and quantizes for seconds to minutes, so it never runs on the event loop
// that answers /health and heartbeats; and it runs in its own process, not a worker thread, so
// its scratch (one whole matrix as int4: 200 MB for a 3B model's embedding table) never counts in
// the gateway's RSS and is returned to the system the moment the build ends. Measured, building
// [0, 16) of the 3B shape in a worker thread of the gateway: its peak RSS 106 -> 374 MB.
// The child builds one range into the shard cache (self-contained: no file refers back to the
// checkpoint), sends the entry's key, and exits.

import os from 'node:os';
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

/** peakRss: the build process's peak resident bytes (the gateway logs it). */
export type ShardBuildReply = { readonly ok: true; readonly key: string; readonly peakRss: number } | { readonly ok: false; readonly error: string };

const send = process.send?.bind(process);
if (send === undefined) throw new Error('shard-serve-child must run as a child process with an IPC channel');
const job = JSON.parse(process.env['HEARTH_SHARD_BUILD_JOB'] ?? 'null') as ShardBuildJob;

async function build(): Promise<string> {
  const ckpt = openCheckpoint(job.modelDir, { range: [job.start, job.end] });
  try {
    // Every core quantizes: the workers are waiting for this build, and the gateway's own loop
    // stays responsive because this process runs niced (shard-serve.ts).
    const opts = { cacheDir: job.cacheDir, selfContained: true, buildThreads: Math.max(1, os.availableParallelism()), int4Block: job.int4Block, kvDtype: job.kvDtype, attention: 'auto' as const };
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

const done = (m: ShardBuildReply): void => {
  send(m, () => process.exit(0));
};
build().then(
  (key) => done({ ok: true, key, peakRss: process.resourceUsage().maxRSS * 1024 }),
  (e: unknown) => done({ ok: false, error: e instanceof Error ? e.message : String(e) }),
);
