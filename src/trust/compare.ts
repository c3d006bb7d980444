// How close a recomputed stage output must be to what a node sent (spot-checking, issue 14).
// The gateway recomputes with the same code and the same kernels (onnxruntime on this machine),
// but not the same batch: a node runs a sequence's decode step batched with other sequences and
// prefill in chunks, and onnxruntime's MatMul/MatMulNBits accumulate in a different order for a
// different M, so honest outputs differ in the last bits (issue 8/9 measured ≤ 3.1e-5 relative
// for fp32 splits against the reference). Across machines int4 kernels may differ more (another
// CPU's MLAS path); 1e-2 of the tensor's largest magnitude leaves two orders of magnitude of room
// over that, while corrupted work (noise, a swapped layer, a skipped layer, another checkpoint)
// moves activations by tens of percent. HEARTH_SPOT_CHECK_TOLERANCE overrides it.
export const DEFAULT_TOLERANCE = 1e-2;

/** max |a − b| / max |b|: 0 for identical tensors; Infinity when the shapes differ. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const d = Math.abs(actual[i]! - e);
    if (!(d <= diff)) diff = d; // NaN in actual counts as a difference
    const m = Math.abs(e);
    if (m > scale) scale = m;
  }
  return Number.isNaN(diff) ? Infinity : diff / Math.max(scale, 1e-6);
}

/** Greedy near-tie: the node's token scores within the tolerance of the best recomputed logit. */
export function nearTie(logits: Float32Array, theirs: number, ours: number, tolerance: number): boolean {
  const a = logits[theirs];
  const b = logits[ours];
  if (a === undefined || b === undefined) return false;
  return b - a <= tolerance * Math.max(1, Math.abs(b));
}
