// What a mixture-of-experts layer costs per token (issue 23): a stage holds every expert of its
// layers (memory counts all E), but a token's step reads only the k experts it is routed to, so
// the bytes read per token — the planner's per-token cost, the engine being bandwidth- or
// compute-bound on weights — count k/E of the expert weights. A batch of B rows reads the union of
// their experts: with routing spread evenly, an expert is skipped by all B with probability
// (1 - k/E)^B, so 1 - (1 - k/E)^B of them are read (8 streams of Qwen3-30B-A3B's 8 of 128: 41%).

import type { Checkpoint, ModelConfig } from '../model/types.ts';

/** A routed expert's weight (qwen3_moe mlp.experts.E.*, mixtral block_sparse_moe.experts.E.*). */
const EXPERT_RE = /\.experts\.\d+\./;
const LAYER_RE = /\.layers\.(\d+)\./;

/** Fraction of a routed layer's expert weights a step of `batch` rows reads (1 for dense models). */
export function expertReadFraction(config: ModelConfig, batch = 1): number {
  const moe = config.moe;
  if (moe === undefined) return 1;
  return 1 - (1 - moe.topK / moe.numExperts) ** Math.max(1, batch);
}

/**
 * Bytes each layer reads per step of `batch` rows: `layerBytes` (as held) less the experts' share
 * the step skips. `heldBytes` is the holder's count of one tensor (int4 or fp32, as built).
 */
export function layerReadBytes(ckpt: Checkpoint, layerBytes: readonly number[], heldBytes: (name: string) => number, batch = 1): number[] {
  const out = [...layerBytes];
  const skip = 1 - expertReadFraction(ckpt.config, batch);
  if (skip === 0) return out;
  for (const name of ckpt.tensorsForRange(0, ckpt.config.numLayers)) {
    const m = LAYER_RE.exec(name);
    if (m === null || !EXPERT_RE.test(name)) continue;
    const i = Number(m[1]);
    out[i] = (out[i] as number) - skip * heldBytes(name);
  }
  return out;
}
