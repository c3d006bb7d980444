// Rows of a safetensors tensor as fp32, read with plain positioned reads (used by the int4 worker
// threads, which have no Checkpoint). safetensors is little-endian, as is every platform
// onnxruntime-node ships for.

import fs from 'node:fs';
import type { DType } from './types.ts';

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Fills `view` from `file` at byte `pos` (positioned reads until it is whole; a short file is an error). */
export function readAt(fd: number, file: string, view: Uint8Array, pos: number): void {
  let got = 0;
  while (got < view.length) {
    const n = fs.readSync(fd, view, got, view.length - got, pos + got);
    if (n <= 0) throw new Error(`${file}: unexpected end of file`);
    got += n;
  }
}

/**
 * Rows [r0, r0 + rows) of a [*, cols] tensor whose data starts at `byteStart`, as fp32 into the
 * start of `out`; `raw` is scratch for 16-bit dtypes (at least rows × cols long).
 */
export function readRowsF32(fd: number, file: string, dtype: DType, byteStart: number, r0: number, cols: number, rows: number, out: Float32Array, raw: Uint16Array): void {
  const count = rows * cols;
  if (dtype === 'F32') {
    readAt(fd, file, new Uint8Array(out.buffer, out.byteOffset, count * 4), byteStart + r0 * cols * 4);
    return;
  }
  readAt(fd, file, new Uint8Array(raw.buffer, raw.byteOffset, count * 2), byteStart + r0 * cols * 2);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) u32[i] = (raw[i] as number) << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(raw[i] as number);
  }
}
