import type { ModelConfig } from '../model/types.ts';
import type { ShardBuildSpec } from '../model/shard-build-spec.ts';

export { QUANTS, type Quant } from '../model/shard-build-spec.ts';

export const PROVIDERS = ['cpu', 'cuda'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** A contiguous layer range [start, end) of a checkpoint, run by one shard. */
export interface StageSpec extends ShardBuildSpec {
  /** intra-op threads for onnxruntime (spinning is always off: stages share cores). */
  readonly threads: number;
  readonly provider: Provider;
}

/**
 * One unit of work for a stage: n consecutive positions of one sequence.
 * The first stage takes token ids, later stages the previous stage's hidden states.
 */
export interface StageItem {
  readonly seq: string;
  /** Position of the first of the n tokens; must equal this stage's KV length for seq. */
  readonly pos: number;
  readonly n: number;
  /** Token ids at positions pos..pos+n-1 (always present: the last stage uses them for penalties). */
  readonly tokens: Int32Array;
  /** [n, hiddenSize] fp32; absent on the first stage. */
  readonly hidden?: Float32Array;
  /** Start this sequence's KV as a copy of the first `len` positions of `from` (prefix reuse). */
  readonly fork?: { readonly from: string; readonly len: number };
  /**
   * pos may be below this stage's KV length for seq: the KV is cut back to pos before the step runs
   * (speculative decoding rolls back rejected draft positions this way, on the next step through
   * every stage, instead of a separate message). pos above the length is still refused.
   */
  readonly rewind?: boolean;
  /**
   * Compute each of the n positions bit for bit as n one-position steps would (fused attention,
   * fp32 projections): tokens a speculative step verifies, and generated tokens replayed after a
   * worker loss, so that neither changes the output. Slower than a plain chunk for long ones.
   */
  readonly exact?: boolean;
  /** Last stage: logits for the last `logitRows` positions of the item (1..n; default 1). A step that
   *  verifies k draft tokens asks for k+1. Items of one batch share it (decode items have n = 1). */
  readonly logitRows?: number;
  /** Last stage: also return every position's final-normed hidden state (`hidden`, [n, hiddenSize]):
   *  what an embedding request pools (issue 21). Absent = false. */
  readonly wantHidden?: boolean;
}

export interface StageResult {
  readonly seq: string;
  /** Non-last stage: [n, hiddenSize] to pass on; last stage with wantHidden: the final-normed states. */
  readonly hidden?: Float32Array;
  /** Last stage: logits [logitRows, vocabSize] of the final logitRows positions of the item. */
  readonly logits?: Float32Array;
}

/**
 * A loaded layer range. Implementations run onnxruntime in a worker thread (session.run blocks the
 * event loop) and own the per-sequence KV cache there.
 */
export interface ShardEngine {
  readonly spec: StageSpec;
  readonly config: ModelConfig;
  readonly first: boolean;
  readonly last: boolean;
  /** Single-token items of different sequences run as one batch; prefill chunks run one by one. */
  run(items: readonly StageItem[]): Promise<StageResult[]>;
  /** Drops the KV of seq (no-op when unknown). */
  free(seq: string): void;
  /** KV positions held for seq (0 when unknown). */
  kvLength(seq: string): number;
  /** Bytes of KV cache currently held. */
  kvBytes(): number;
  /** Bytes of weights held (for the planner and `hearth bench`). */
  weightBytes(): number;
  close(): Promise<void>;
}
