// A first stage's token lookup done here rather than inside onnxruntime (see
// src/model/onnx/lookup-outside.ts for why): rows of the int4/int8 table are read with positioned
// reads, so their bytes pass through the page cache and never become part of this process's RSS
// (a mapped table's looked-up rows each left 64 KB resident). Tokens are sorted first and
// neighbouring rows share one read. The values are GatherBlockQuantized's, bit for bit:
// float(q - zero point) × scale, zero point 2^(bits-1) unless the table has its own.

import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { readAt } from '../model/read-rows.ts';
import { LOOKUP_KEY, type LookupTensor, type OutsideLookup } from '../model/onnx/lookup-outside.ts';

const { onnx } = onnxProto;

/** Rows closer than this many bytes are read together (one read beats two for a few KB). */
const JOIN_BYTES = 8 << 10;
/** The most table bytes one read takes (bounds the scratch). */
const MAX_READ = 256 << 10;

/** Bytes of one initializer: a file region (read on demand) or inline bytes. */
type Source = { readonly fd: number; readonly file: string; readonly offset: number } | { readonly bytes: Uint8Array };

export class TableLookup {
  /** Positioned reads done so far (tests see the neighbouring rows share one). */
  reads = 0;
  private readonly qScratch: Uint8Array;
  private readonly sScratch: Float32Array;
  private readonly zScratch: Uint8Array;

  private constructor(
    private readonly fds: readonly number[],
    private readonly q: Source,
    private readonly s: Source,
    private readonly z: Source | null,
    readonly rows: number,
    readonly width: number,
    private readonly rowBytes: number,
    private readonly blocks: number,
    private readonly zRowBytes: number,
    private readonly lk: OutsideLookup,
  ) {
    const span = Math.max(1, Math.floor(MAX_READ / rowBytes));
    this.qScratch = new Uint8Array(span * rowBytes);
    this.sScratch = new Float32Array(span * blocks);
    this.zScratch = new Uint8Array(span * zRowBytes);
  }

  /**
   * The lookup a first stage's model.onnx asks of its caller, or null when the graph does its own.
   * Files are opened now: an uncached build's folder is removed once onnxruntime has loaded it.
   */
  static open(modelPath: string): TableLookup | null {
    const m = onnx.ModelProto.decode(fs.readFileSync(modelPath));
    const meta = m.metadataProps?.find((p) => p.key === LOOKUP_KEY)?.value;
    if (!meta) return null;
    const lk = JSON.parse(meta) as OutsideLookup;
    const dir = path.dirname(modelPath);
    const fds = new Map<string, number>();
    const source = (t: LookupTensor): { src: Source; dims: readonly number[] } => {
      if (t.location === undefined) return { src: { bytes: Buffer.from(t.base64 ?? '', 'base64') }, dims: t.dims };
      // Only a file beside the model (onnxruntime refuses external paths outside its folder too).
      const file = path.join(dir, path.basename(t.location));
      let fd = fds.get(file);
      if (fd === undefined) {
        fd = fs.openSync(file, 'r');
        fds.set(file, fd);
      }
      return { src: { fd, file, offset: t.offset ?? 0 }, dims: t.dims };
    };
    try {
      const q = source(lk.table);
      const s = source(lk.scales);
      const z = lk.zeroPoints ? source(lk.zeroPoints) : null;
      const [rows, rowBytes] = q.dims as [number, number];
      const blocks = s.dims[1] as number;
      const zRowBytes = Math.ceil((blocks * lk.bits) / 8);
      return new TableLookup([...fds.values()], q.src, s.src, z?.src ?? null, rows, (rowBytes * 8) / lk.bits, rowBytes, blocks, zRowBytes, lk);
    } catch (e) {
      for (const fd of fds.values()) fs.closeSync(fd);
      throw e;
    }
  }

  /** Rows [r0, r1) of `src` (`rowBytes` each) into the start of `into`. */
  private fetch(src: Source, r0: number, r1: number, rowBytes: number, into: Uint8Array): void {
    const view = into.subarray(0, (r1 - r0) * rowBytes);
    if ('bytes' in src) view.set(src.bytes.subarray(r0 * rowBytes, r1 * rowBytes));
    else {
      readAt(src.fd, src.file, view, src.offset + r0 * rowBytes);
      this.reads++;
    }
  }

  /** out[i·width ..] = row ids[i] dequantized (a negative id counts from the end, as onnxruntime's). */
  lookup(ids: Int32Array, out: Float32Array): void {
    const { rows, width, rowBytes, blocks, zRowBytes } = this;
    const { bits, blockSize } = this.lk;
    const at = new Map<number, number[]>();
    ids.forEach((id, i) => {
      const r = id < 0 ? id + rows : id;
      if (r < 0 || r >= rows) throw new RangeError(`token id ${id} is outside the embedding table's ${rows} rows`);
      const list = at.get(r);
      if (list) list.push(i);
      else at.set(r, [i]);
    });
    const sorted = [...at.keys()].sort((a, b) => a - b);
    const span = this.qScratch.length / rowBytes;
    const sBytes = new Uint8Array(this.sScratch.buffer);
    const dflt = 1 << (bits - 1);
    for (let k = 0; k < sorted.length; ) {
      const r0 = sorted[k] as number;
      let e = k + 1;
      while (e < sorted.length && ((sorted[e] as number) - (sorted[e - 1] as number) - 1) * rowBytes <= JOIN_BYTES && (sorted[e] as number) - r0 < span) e++;
      const r1 = (sorted[e - 1] as number) + 1;
      this.fetch(this.q, r0, r1, rowBytes, this.qScratch);
      this.fetch(this.s, r0, r1, blocks * 4, sBytes);
      if (this.z !== null) this.fetch(this.z, r0, r1, zRowBytes, this.zScratch);
      for (; k < e; k++) {
        const r = sorted[k] as number;
        const qo = (r - r0) * rowBytes;
        const so = (r - r0) * blocks;
        const zo = (r - r0) * zRowBytes;
        const first = (at.get(r) as number[])[0] as number;
        const o = first * width;
        for (let j = 0; j < width; j++) {
          const b = (j / blockSize) | 0;
          let v: number;
          if (bits === 4) {
            const byte = this.qScratch[qo + (j >> 1)] as number;
            v = j & 1 ? byte >> 4 : byte & 15;
          } else v = this.qScratch[qo + j] as number;
          let zp = dflt;
          if (this.z !== null) {
            if (bits === 4) {
              const zb = this.zScratch[zo + (b >> 1)] as number;
              zp = b & 1 ? zb >> 4 : zb & 15;
            } else zp = this.zScratch[zo + b] as number;
          }
          // (q - zp) is a small integer and the scale a float32: one rounding, as the kernel's.
          out[o + j] = (v - zp) * (this.sScratch[so + b] as number);
        }
        for (const i of (at.get(r) as number[]).slice(1)) out.copyWithin(i * width, o, o + width);
      }
    }
  }

  close(): void {
    for (const fd of this.fds) fs.closeSync(fd);
  }
}
