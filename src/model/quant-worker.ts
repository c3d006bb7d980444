// Worker side of QuantPool: takes row chunks of a job until none are left, reading each from the
// checkpoint file and quantizing it into the job's shared output (see quant-pool.ts).

import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { quantizeRowsInt4, type Int4Matrix } from './quant-int4.ts';
import { CTL_DONE, CTL_FAILED, CTL_NEXT, type PoolJob, type RowChunk } from './quant-pool.ts';
import { readRowsF32 } from './read-rows.ts';

let f32 = new Float32Array(0);
let raw = new Uint16Array(0);

function work(job: PoolJob): void {
  const state = new Int32Array(job.ctl);
  const dst: Int4Matrix = {
    rows: job.packed.byteLength / (job.blocks * (job.block / 2)),
    cols: job.cols,
    blocks: job.blocks,
    block: job.block,
    packed: new Uint8Array(job.packed),
    scales: new Float32Array(job.scales),
    ...(job.zeros !== undefined ? { zeros: new Uint8Array(job.zeros) } : {}),
  };
  for (;;) {
    const i = Atomics.add(state, CTL_NEXT, 1);
    if (i >= job.chunks.length) return;
    const c = job.chunks[i] as RowChunk;
    try {
      const count = c.rows * job.cols;
      if (f32.length < count) f32 = new Float32Array(count);
      if (c.dtype !== 'F32' && raw.length < count) raw = new Uint16Array(count);
      const fd = fs.openSync(c.file, 'r');
      try {
        readRowsF32(fd, c.file, c.dtype, c.byteStart, c.r0, job.cols, c.rows, f32, raw);
      } finally {
        fs.closeSync(fd);
      }
      quantizeRowsInt4(f32, c.rows, dst, c.dstRow);
    } catch {
      Atomics.store(state, CTL_FAILED, 1);
    }
    Atomics.add(state, CTL_DONE, 1);
    Atomics.notify(state, CTL_DONE);
  }
}

parentPort?.on('message', (job: PoolJob) => work(job));
