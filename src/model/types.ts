// Shared model-level types. Everything that reads a checkpoint or builds a graph speaks these.

export const FAMILIES = ['llama', 'qwen2', 'qwen3', 'mistral'] as const;
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
