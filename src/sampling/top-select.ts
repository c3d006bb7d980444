// Partial selection: the m best entries of a score array without sorting all of it. A bounded
// min-heap keyed on the worst kept entry rejects most candidates with one comparison, so the pass is
// close to O(V) for m ≪ V (top-k, top logprobs, the first rounds of top-p).

/** a ranks before b: higher score, then lower id (so ties resolve to the lowest id everywhere). */
const before = (s: Float32Array, a: number, b: number): boolean => {
  const x = s[a]!;
  const y = s[b]!;
  return x > y || (x === y && a < b);
};

/**
 * Ids of the m best scores, best first. `-Infinity` entries are never selected (banned tokens), so
 * fewer than m ids come back when fewer are finite.
 */
export function selectTop(scores: Float32Array, m: number): Int32Array {
  const n = scores.length;
  const k = Math.max(0, Math.min(m, n));
  const heap = new Int32Array(k);
  let size = 0;
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      // The root holds the worst kept entry: pick the worse child.
      const c = r < size && before(scores, heap[l]!, heap[r]!) ? r : l;
      if (!before(scores, heap[i]!, heap[c]!)) return;
      const t = heap[i]!;
      heap[i] = heap[c]!;
      heap[c] = t;
      i = c;
    }
  };
  if (k === 0) return heap;
  for (let id = 0; id < n; id++) {
    const v = scores[id]!;
    if (v === -Infinity) continue;
    if (size < k) {
      let i = size++;
      heap[i] = id;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!before(scores, heap[p]!, heap[i]!)) break;
        const t = heap[i]!;
        heap[i] = heap[p]!;
        heap[p] = t;
        i = p;
      }
    } else if (v > scores[heap[0]!]!) {
      // Equal scores never displace: ids arrive ascending, so the kept one is the lower id.
      heap[0] = id;
      siftDown(0);
    }
  }
  const out = heap.subarray(0, size);
  out.sort((a, b) => (before(scores, a, b) ? -1 : 1));
  return out;
}

/** Index of the largest score, ties → lowest id; -1 when every score is -Infinity. One pass. */
export function argmax(scores: Float32Array): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i]!;
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}
