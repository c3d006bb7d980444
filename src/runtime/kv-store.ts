// Per-sequence KV cache of one stage, for each layer a K and a V array in one of two layouts:
// - 'position' (fused attention): position-major, fp32 or fp16, in groups (kv-group.ts): a group
//   holds [cap, width, Hkv, D] per layer, a sequence owns one slot of one group and its first `len`
//   positions there are valid. A lone sequence is a group of width 1 (a zero-copy prefix view of its
//   own slab); a decode batch whose sequences share a group reads all their pasts in place.
//   arrange() keeps batches and groups aligned, copying only sequences that join or leave.
// - 'head' (GroupQueryAttention / plain): [Hkv, stride, D] (batch dim 1) whose first `len`
//   positions per head are valid. With GroupQueryAttention a single-sequence step
// passes the same array as past input and as pre-allocated present output, so the kernel appends in
// place (its shared-buffer mode) and nothing is copied; capacity grows geometrically. A batched step
// pads into one [B, Hkv, P, D] buffer and compacts each row back out afterwards.

/** fp32, or fp16 bits (onnxruntime's float16 tensors are Uint16Array). */
export type KvArray = Float32Array | Uint16Array;

import { copySlot, KvGroup, type Slot } from './kv-group.ts';

export interface SeqKv {
  len: number;
  /** Position layout: where the sequence lives (k, v and stride are unused there). */
  at?: Omit<Slot, 'len'>;
  /** Positions the slab can hold (>= len). */
  stride: number;
  k: KvArray[];
  v: KvArray[];
}

export interface KvShape {
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Default 'head'. */
  readonly layout?: 'head' | 'position';
  /** fp16 elements (position layout only). */
  readonly half?: boolean;
  /**
   * Positions a sequence can reach on this stage (its rotary tables' rows): the position layout
   * reserves this much address space per slab and grows in place within it (kv-group.ts).
   */
  readonly maxPositions?: number;
}

/** Positions of room a repacked group gets beyond the step that made it. */
const REPACK_HEADROOM = 64;

export class KvStore {
  private readonly seqs = new Map<string, SeqKv>();
  constructor(readonly shape: KvShape) {}

  /** Bytes per cached position across this stage's layers (K and V, fp32). */
  get bytesPerPosition(): number {
    return this.shape.layers * 2 * this.shape.kvHeads * this.shape.headDim * (this.shape.half === true ? 2 : 4);
  }

  private alloc(n: number): KvArray {
    return this.shape.half === true ? new Uint16Array(n) : new Float32Array(n);
  }

  /** Copies made by arrange() since the store was created (for `hearth bench` and tests). */
  readonly moves = { joined: 0, evicted: 0, repacked: 0, positions: 0 };

  private get pooled(): boolean {
    return this.shape.layout === 'position';
  }

  get(seq: string): SeqKv {
    let s = this.seqs.get(seq);
    if (!s) {
      if (this.pooled) {
        const group = new KvGroup(this.shape, 1, 0);
        group.members[0] = seq;
        s = { len: 0, stride: 0, k: [], v: [], at: { group, slot: 0 } };
      } else {
        const empty = (): KvArray[] => Array.from({ length: this.shape.layers }, () => this.alloc(0));
        s = { len: 0, stride: 0, k: empty(), v: empty() };
      }
      this.seqs.set(seq, s);
    }
    return s;
  }

  /**
   * Position layout: places the sequences `ids` in one group with room for `need` positions and
   * returns it with each id's slot. Slots of the group that no id takes are idle this step (the
   * caller feeds a masked dummy row for each). Reuses the group that already holds most of them when
   * that costs few copies and few idle rows: sequences from elsewhere move into its free slots (or
   * into slots of members that sit this step out, which move to groups of their own); otherwise
   * every id is repacked into a new group of exactly their number. A single id always ends up in
   * a group of width 1 (a prefill chunk reads its past as one contiguous slab).
   */
  arrange(ids: readonly string[], need: number): { group: KvGroup; slots: number[] } {
    const seqs = ids.map((id) => this.get(id));
    const at = (i: number): NonNullable<SeqKv['at']> => (seqs[i] as SeqKv).at as NonNullable<SeqKv['at']>;
    const count = new Map<KvGroup, number>();
    for (let i = 0; i < seqs.length; i++) count.set(at(i).group, (count.get(at(i).group) ?? 0) + 1);
    let best: KvGroup | null = null;
    for (const [g, c] of count) if (best === null || c > (count.get(best) ?? 0) || (c === count.get(best) && g.width < best.width)) best = g;
    const g0 = best as KvGroup;
    const inside = count.get(g0) ?? 0;
    const outsiders = seqs.length - inside;
    const idleMembers = g0.live() - inside;
    const freeSlots = g0.width - g0.live();
    const evict = Math.max(0, outsiders - freeSlots);
    const reuse =
      ids.length <= g0.width &&
      (ids.length === 1 ? g0.width === 1 : g0.width - ids.length <= Math.floor(g0.width / 4) && (outsiders + evict) * 2 < ids.length) &&
      evict <= idleMembers;
    let group: KvGroup;
    if (reuse) {
      group = g0;
      group.grow(need, this.maxLen(group));
      const inBatch = new Set(ids);
      for (let slot = 0, left = evict; slot < group.width && left > 0; slot++) {
        const m = group.members[slot];
        if (m === null || m === undefined || inBatch.has(m)) continue;
        const s = this.seqs.get(m) as SeqKv;
        this.move(m, s, new KvGroup(this.shape, 1, s.len), 0);
        this.moves.evicted++;
        left--;
      }
      seqs.forEach((s, i) => {
        if (at(i).group === group) return;
        this.move(ids[i] as string, s, group, group.freeSlot());
        this.moves.joined++;
      });
    } else {
      // Headroom for the decode steps ahead: growing a wide group copies all of it (16 sequences
      // of 2k positions: ~0.8 s for the 0.5B shape on a 2-core host).
      group = new KvGroup(this.shape, ids.length, need + REPACK_HEADROOM);
      seqs.forEach((s, i) => this.move(ids[i] as string, s, group, i));
      this.moves.repacked++;
    }
    return { group, slots: seqs.map((_, i) => at(i).slot) };
  }

  private maxLen(group: KvGroup): number {
    let n = 0;
    for (const m of group.members) if (m !== null) n = Math.max(n, this.seqs.get(m)?.len ?? 0);
    return n;
  }

  private move(id: string, s: SeqKv, to: KvGroup, slot: number): void {
    const from = s.at as NonNullable<SeqKv['at']>;
    if (s.len > 0) copySlot(from.group, from.slot, to, slot, s.len, this.shape.layers);
    this.moves.positions += s.len;
    from.group.members[from.slot] = null;
    to.members[slot] = id;
    s.at = { group: to, slot };
  }

  length(seq: string): number {
    return this.seqs.get(seq)?.len ?? 0;
  }

  free(seq: string): void {
    const s = this.seqs.get(seq);
    if (s?.at) s.at.group.members[s.at.slot] = null;
    this.seqs.delete(seq);
  }

  /** Makes room for `need` positions (copying the valid ones into larger slabs when short). */
  reserve(seq: string, need: number): SeqKv {
    if (this.pooled) {
      this.arrange([seq], need);
      return this.get(seq);
    }
    const s = this.get(seq);
    if (s.stride >= need) return s;
    const stride = Math.max(need, Math.ceil(s.stride * 1.5), 64);
    const { kvHeads, headDim } = this.shape;
    const grow = (a: KvArray): KvArray => {
      const out = this.alloc(kvHeads * stride * headDim);
      if (this.shape.layout === 'position') {
        out.set(a.subarray(0, s.len * kvHeads * headDim) as never);
        return out;
      }
      for (let h = 0; h < kvHeads; h++) out.set(a.subarray(h * s.stride * headDim, (h * s.stride + s.len) * headDim) as never, h * stride * headDim);
      return out;
    };
    s.k = s.k.map(grow);
    s.v = s.v.map(grow);
    s.stride = stride;
    return s;
  }

  totalBytes(): number {
    let n = 0;
    for (const s of this.seqs.values()) n += s.len;
    return n * this.bytesPerPosition;
  }

  /** Cuts seq's KV back to its first `len` positions (a speculative step's rejected drafts). */
  truncate(seq: string, len: number): void {
    const s = this.seqs.get(seq);
    if (!s || len >= s.len) return;
    if (len === 0) {
      this.free(seq);
      return;
    }
    // Position layout: rows past len are simply overwritten by the next step. Head layout keeps
    // exact-size arrays for the plain path, so it is cut to size.
    if (this.shape.layout !== 'position') {
      const cut = (a: KvArray): KvArray => sliceRow(a as Float32Array, this.shape, s.stride, [[0, len]]);
      s.k = s.k.map(cut);
      s.v = s.v.map(cut);
      s.stride = len;
    }
    s.len = len;
  }

  /** Bytes of KV buffers held, spare capacity and idle slots included. */
  reservedBytes(): number {
    if (!this.pooled) {
      let n = 0;
      for (const s of this.seqs.values()) n += s.stride;
      return n * this.bytesPerPosition;
    }
    const groups = new Set<KvGroup>();
    for (const s of this.seqs.values()) if (s.at) groups.add(s.at.group);
    let n = 0;
    for (const g of groups) n += g.bytes();
    return n;
  }

  /** Starts `seq` as a copy of the first `len` positions of `from` (prefix reuse). */
  fork(seq: string, from: string, len: number): void {
    const src = this.seqs.get(from);
    const have = src?.len ?? 0;
    if (!src || len > have) throw new RangeError(`fork: ${from} holds ${have} positions, ${len} requested`);
    if (src.at) {
      this.free(seq);
      const group = new KvGroup(this.shape, 1, len);
      if (len > 0) copySlot(src.at.group, src.at.slot, group, 0, len, this.shape.layers);
      group.members[0] = seq;
      this.seqs.set(seq, { len, stride: 0, k: [], v: [], at: { group, slot: 0 } });
      return;
    }
    const rowSize = this.shape.kvHeads * this.shape.headDim;
    const cut = (a: KvArray): KvArray => (this.shape.layout === 'position' ? a.slice(0, len * rowSize) : sliceRow(a as Float32Array, this.shape, src.stride, [[0, len]]));
    this.seqs.set(seq, { len, stride: len, k: src.k.map(cut), v: src.v.map(cut) });
  }
}

/**
 * Copies position ranges of one row [Hkv, rowLen, D] (a view into a possibly batched buffer) into a
 * fresh [Hkv, sum(ranges), D] array.
 */
export function sliceRow(row: Float32Array, shape: KvShape, rowLen: number, ranges: readonly (readonly [number, number])[]): Float32Array {
  const { kvHeads, headDim } = shape;
  const outLen = ranges.reduce((s, [a, b]) => s + (b - a), 0);
  const out = new Float32Array(kvHeads * outLen * headDim);
  for (let h = 0; h < kvHeads; h++) {
    let o = h * outLen * headDim;
    for (const [a, b] of ranges) {
      const src = (h * rowLen + a) * headDim;
      const n = (b - a) * headDim;
      out.set(row.subarray(src, src + n), o);
      o += n;
    }
  }
  return out;
}

/** Right-pads several rows [Hkv, stride_b, D] (len_b valid) into one [B, Hkv, P, D] buffer. */
export function padRows(rows: readonly Float32Array[], lens: readonly number[], strides: readonly number[], shape: KvShape, p: number): Float32Array {
  const { kvHeads, headDim } = shape;
  const out = new Float32Array(rows.length * kvHeads * p * headDim);
  rows.forEach((row, b) => {
    const len = lens[b] ?? 0;
    const stride = strides[b] ?? len;
    for (let h = 0; h < kvHeads; h++) {
      out.set(row.subarray(h * stride * headDim, (h * stride + len) * headDim), (b * kvHeads + h) * p * headDim);
    }
  });
  return out;
}
