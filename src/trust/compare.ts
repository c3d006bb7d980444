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
/** int4 (MatMulNBits): before int4 graphs evened out odd row counts, a lone row was rounded apart
 *  from a batch's rows and the difference grew over a stage's layers: on the 0.5B shape (17 layers,
 *  8 streams batched on the node, the gateway's mirror one at a time) honest stage outputs differed
 *  by up to 3.2e-2. Kept at 0.15 (~5× that): another CPU's int4 kernels may round differently, and
 *  it still catches noise, a wrong or skipped layer. */
export const INT4_TOLERANCE = 0.15;

export function toleranceFor(quant: string): number {
  return quant === 'int4' ? INT4_TOLERANCE : DEFAULT_TOLERANCE;
}

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

/** Greedy near-tie: the node's token scores within `tolerance` of the logits' spread (best − mean)
 *  below the best recomputed one — rounding can swap two nearly equal top tokens, while a token
 *  picked at random (or any wrong one) sits near the mean, a whole spread below the best. */
export function nearTie(logits: Float32Array, theirs: number, ours: number, tolerance: number): boolean {
  const a = logits[theirs];
  const b = logits[ours];
  if (a === undefined || b === undefined || !Number.isFinite(a)) return false;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < logits.length; i++) { const v = logits[i]!; if (Number.isFinite(v)) { sum += v; n++; } }
  const spread = b - (n > 0 ? sum / n : b);
  return b - a <= tolerance * Math.max(spread, 1e-6);
}
