// Position-major KV of the fused attention path, pooled so that a decode batch reads its pasts in
// place. A group holds, per layer, K and V as [cap, width, Hkv, D]: position t of slot i at row
// t*width+i. That is exactly the [P, B, Hkv, D] past the fused graph reads, so a batch whose
// sequences are the group's slots (in slot order) feeds a prefix view of each layer's buffer and
// copies nothing; each step only writes its own new rows. A lone sequence is a group of width 1
// (the [cap, Hkv, D] slab of a single stream). Rows past a sequence's length, and slots with no
// member, hold stale but finite values that the step's past mask hides.
//
// Membership changes are what cost copies (KvStore.arrange decides): a sequence joining a group
// is copied into a free slot, one leaving it is copied out, and a batch that shares too little with
// any group is repacked into a new one. Measured on the 0.5B int4 shape (24 layers, Hkv·D = 128):
// a strided copy costs ~200 ns per position and layer from JS (subarray+set, an element loop and
// Buffer.copy all land there), so repacking 16 sequences of 2k positions every step, as the padded
// batch did, cost ~380 ms per step against ~145 ms of session.run.

import type { KvArray, KvShape } from './kv-store.ts';

/** ES2024's resizable ArrayBuffer (Node 20 has it; TypeScript's ES2023 lib does not type it). */
interface Resizable extends ArrayBuffer {
  readonly maxByteLength: number;
  resize(byteLength: number): void;
}
const ResizableArrayBuffer = ArrayBuffer as unknown as new (byteLength: number, options: { maxByteLength: number }) => Resizable;

/** Positions a slab grows by at a time (a resize is cheap; this only bounds how often it runs). */
const GRAIN = 64;
/** Positions reserved when the shape names no limit (a reservation that runs out is replaced by one twice as large, copying once). */
const DEFAULT_RESERVE = 4096;

/** One sequence's place in the position layout. */
export interface Slot {
  len: number;
  group: KvGroup;
  slot: number;
}

export class KvGroup {
  cap = 0;
  k: KvArray[];
  v: KvArray[];
  /** The buffers under k and v (same order: k's layers, then v's). */
  private bufs: Resizable[] = [];
  /** Slot → sequence id (null: free; its rows are stale). */
  readonly members: (string | null)[];

  constructor(
    private readonly shape: KvShape,
    readonly width: number,
    cap: number,
  ) {
    this.members = new Array<string | null>(width).fill(null);
    this.k = [];
    this.v = [];
    this.reserve(Math.max(cap, this.shape.maxPositions ?? DEFAULT_RESERVE), 0);
    this.grow(cap);
  }

  private get element(): number {
    return this.shape.half === true ? 2 : 4;
  }

  /**
   * Backs every layer's K and V with a resizable ArrayBuffer that may grow to `positions` per slot,
   * copying the first `keep` positions of the current buffers over (0 when there are none). V8
   * reserves the address space and commits pages only as the buffer grows, in place: no second
   * slab and no copy while the reservation holds (issue 25: growing by copy held the old and new
   * slab of a layer at once, and left every old one to the garbage collector).
   */
  private reserve(positions: number, keep: number): void {
    const bytes = (p: number): number => p * this.width * this.row * this.element;
    const n = Math.min(keep, this.cap) * this.width * this.row;
    const next = (old: KvArray | undefined): [Resizable, KvArray] => {
      const buf = new ResizableArrayBuffer(bytes(this.cap), { maxByteLength: bytes(positions) });
      // Length-tracking views: they follow every resize without being made again.
      const view = this.shape.half === true ? new Uint16Array(buf) : new Float32Array(buf);
      if (old !== undefined && n > 0) view.set(old.subarray(0, n) as never);
      return [buf, view];
    };
    const bufs: Resizable[] = [];
    for (const which of [this.k, this.v]) {
      for (let l = 0; l < this.shape.layers; l++) {
        const [buf, view] = next(which[l]);
        bufs.push(buf);
        which[l] = view;
      }
    }
    this.bufs = bufs;
  }

  get row(): number {
    return this.shape.kvHeads * this.shape.headDim;
  }

  /** Sequences in the group. */
  live(): number {
    let n = 0;
    for (const m of this.members) if (m !== null) n++;
    return n;
  }

  freeSlot(): number {
    return this.members.indexOf(null);
  }

  /**
   * Room for `need` positions per slot, in place: each buffer is resized (pages committed as they
   * are first written), so the KV held is what the positions in use take, to GRAIN positions. Past
   * the reservation (a shape without maxPositions) the buffers are replaced by ones reserving twice
   * as much, copying the `used` positions once.
   */
  grow(need: number, used = this.cap): void {
    if (need <= this.cap) return;
    const cap = Math.ceil(need / GRAIN) * GRAIN;
    const bytes = cap * this.width * this.row * this.element;
    if (bytes > (this.bufs[0]?.maxByteLength ?? 0)) this.reserve(Math.max(cap, 2 * (this.bufs[0]?.maxByteLength ?? 0) / (this.width * this.row * this.element)), used);
    for (const b of this.bufs) b.resize(bytes);
    this.cap = cap;
  }

  /** Bytes of the buffers (all slots, full capacity). */
  bytes(): number {
    return this.shape.layers * 2 * this.cap * this.width * this.row * (this.shape.half === true ? 2 : 4);
  }

  /** Past of the first p positions of every slot, layer l, as the graph reads it: [p, width, Hkv, D]. */
  past(which: 'k' | 'v', l: number, p: number): KvArray {
    return (this[which][l] as KvArray).subarray(0, p * this.width * this.row);
  }

  /** Writes n rows of one slot starting at position pos (src: [n, Hkv, D]). */
  write(l: number, slot: number, pos: number, k: KvArray, v: KvArray): void {
    const row = this.row;
    const n = k.length / row;
    const kk = this.k[l] as KvArray;
    const vv = this.v[l] as KvArray;
    if (this.width === 1) {
      kk.set(k as never, pos * row);
      vv.set(v as never, pos * row);
      return;
    }
    for (let t = 0; t < n; t++) {
      const at = ((pos + t) * this.width + slot) * row;
      kk.set(k.subarray(t * row, (t + 1) * row) as never, at);
      vv.set(v.subarray(t * row, (t + 1) * row) as never, at);
    }
  }
}

/** Copies the first len positions of a slot of one group into a slot of another, every layer. */
export function copySlot(from: KvGroup, fromSlot: number, to: KvGroup, toSlot: number, len: number, layers: number): void {
  const row = from.row;
  for (let l = 0; l < layers; l++) {
    for (const w of ['k', 'v'] as const) {
      const src = from[w][l] as KvArray;
      const dst = to[w][l] as KvArray;
      if (from.width === 1 && to.width === 1) {
        dst.set(src.subarray(0, len * row) as never);
        continue;
      }
      for (let t = 0; t < len; t++) {
        const s = (t * from.width + fromSlot) * row;
        dst.set(src.subarray(s, s + row) as never, (t * to.width + toSlot) * row);
      }
    }
  }
}
