// What a shard graph is built from, besides the checkpoint: its layer range and weight format.
// runtime's StageSpec extends this with how the shard runs (threads, provider), so imports point
// runtime → model and never back.

export const QUANTS = ['none', 'int4'] as const;
/** Weight format of the linear layers: none keeps the stored precision (as fp32), int4 = MatMulNBits. */
export type Quant = (typeof QUANTS)[number];

/** A contiguous layer range [start, end) of a checkpoint, built with `quant` weights. */
export interface ShardBuildSpec {
  readonly start: number;
  readonly end: number;
  readonly quant: Quant;
}
