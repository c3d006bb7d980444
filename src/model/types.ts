// Shared model-level types. Everything that reads a checkpoint or builds a graph speaks these.

export const FAMILIES = ['llama', 'qwen2', 'qwen3', 'mistral', 'qwen3_moe', 'mixtral'] as const;
export type Family = (typeof FAMILIES)[number];

export const DTYPES = ['F32', 'F16', 'BF16'] as const;
export type DType = (typeof DTYPES)[number];

/** Llama 3.x "llama3" rope scaling (transformers' _compute_llama3_parameters). */
export interface RopeScaling {
  readonly type: 'llama3' | 'linear' | 'default';
  readonly factor: number;
  readonly lowFreqFactor?: number;
  readonly highFreqFactor?: number;
  readonly originalMaxPositions?: number;
}

/** config.json normalised across families. */
export interface ModelConfig {
  readonly family: Family;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  readonly tieEmbeddings: boolean;
  /** qwen2: q/k/v projections carry a bias. */
  readonly attentionBias: boolean;
  /** qwen3: per-head RMSNorm on q and k before RoPE. */
  readonly qkNorm: boolean;
  readonly bosTokenId: number | null;
  /** config.json eos plus generation_config.json eos, de-duplicated. */
  readonly eosTokenIds: readonly number[];
  /** Mixture-of-experts MLP (qwen3_moe, mixtral); absent for dense families. */
  readonly moe?: MoeConfig;
}

/**
 * A routed SwiGLU MLP: softmax over the router's logits for all `numExperts`, the `topK` largest
 * kept (renormalised to sum 1 when `normTopK`: mixtral always, qwen3_moe's norm_topk_prob), each
 * chosen expert's gate/up/down weighted by its probability and summed. No shared expert.
 */
export interface MoeConfig {
  /** Tensor naming: qwen3_moe `mlp.gate` + `mlp.experts.E.{gate,up,down}_proj`; mixtral
   *  `block_sparse_moe.gate` + `block_sparse_moe.experts.E.{w1,w3,w2}`. */
  readonly naming: 'qwen3_moe' | 'mixtral';
  readonly numExperts: number;
  readonly topK: number;
  readonly normTopK: boolean;
  /** Each expert's intermediate size (qwen3_moe moe_intermediate_size; mixtral intermediate_size). */
  readonly expertIntermediateSize: number;
  /** Layers whose MLP is sparse; the others are dense with intermediateSize (qwen3_moe's
   *  decoder_sparse_step / mlp_only_layers; every layer for mixtral). */
  readonly sparseLayers: readonly number[];
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute path of the .safetensors file holding it. */
  readonly file: string;
  /** Byte range inside that file (absolute offsets, end exclusive). */
  readonly byteStart: number;
  readonly byteEnd: number;
}

/** An opened Hugging Face checkpoint folder. Reads lazily; validation errors are HearthError. */
export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor converted to fp32 (row-major, HF layout: Linear weights are [out, in]). */
  read(name: string): Float32Array;
  /** Names of the tensors a stage [start, end) needs (embedding if first, norm + lm_head if last). */
  tensorsForRange(start: number, end: number): string[];
  close(): void;
}
