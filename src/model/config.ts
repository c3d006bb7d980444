// config.json (+ generation_config.json) → ModelConfig, normalised across the supported families.
// Field names and defaults follow transformers' LlamaConfig / Qwen2Config / Qwen3Config / MistralConfig.

import { HearthError } from '../errors/index.ts';
import { FAMILIES, type Family, type ModelConfig, type MoeConfig, type RopeScaling } from './types.ts';

type Json = Record<string, unknown>;

const CONFIG_FILE = 'config.json';

function fail(msg: string): never {
  throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [CONFIG_FILE, msg]);
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(raw: Json, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`${key} must be a positive integer, got ${JSON.stringify(raw[key])}`);
  return v;
}

function num(raw: Json, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${key} must be a positive number, got ${JSON.stringify(raw[key])}`);
  return v;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

/** rope_scaling: transformers writes `rope_type` (newer) or `type` (older). */
function parseRopeScaling(v: unknown): RopeScaling | null {
  if (v === null || v === undefined) return null;
  if (!isObject(v)) fail('rope_scaling must be an object or null');
  const kind = v['rope_type'] ?? v['type'];
  const factor = v['factor'];
  if (kind === 'default') return null;
  if (typeof factor !== 'number' || !(factor > 0)) fail(`rope_scaling.factor must be a positive number, got ${JSON.stringify(factor)}`);
  if (kind === 'linear') return { type: 'linear', factor };
  if (kind === 'llama3') {
    const low = v['low_freq_factor'];
    const high = v['high_freq_factor'];
    const orig = v['original_max_position_embeddings'];
    if (typeof low !== 'number' || typeof high !== 'number' || typeof orig !== 'number' || !(high > low)) {
      fail('rope_scaling "llama3" needs numeric low_freq_factor < high_freq_factor and original_max_position_embeddings');
    }
    return { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: orig };
  }
  throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [CONFIG_FILE, `rope_scaling type ${JSON.stringify(kind)} is not supported; supported: llama3, linear, default`]);
}

/**
 * The routed MLP of qwen3_moe (transformers Qwen3MoeConfig / Qwen3MoeDecoderLayer: layer i is
 * sparse unless listed in mlp_only_layers, and only when (i + 1) % decoder_sparse_step == 0;
 * norm_topk_prob defaults to false) and mixtral (MixtralConfig: every layer, num_local_experts,
 * intermediate_size is each expert's, top-k always renormalised). null for dense families.
 */
function parseMoe(raw: Json, family: Family, numLayers: number): MoeConfig | null {
  if (family !== 'qwen3_moe' && family !== 'mixtral') return null;
  const numExperts = int(raw, family === 'mixtral' ? 'num_local_experts' : 'num_experts', 8);
  const topK = int(raw, 'num_experts_per_tok', 2);
  if (topK > numExperts) fail(`num_experts_per_tok (${topK}) must not exceed the number of experts (${numExperts})`);
  if (family === 'mixtral') {
    const all = Array.from({ length: numLayers }, (_, i) => i);
    return { naming: 'mixtral', numExperts, topK, normTopK: true, expertIntermediateSize: int(raw, 'intermediate_size'), sparseLayers: all };
  }
  const step = int(raw, 'decoder_sparse_step', 1);
  const only = raw['mlp_only_layers'] ?? [];
  if (!Array.isArray(only) || !only.every((v) => Number.isInteger(v))) fail(`mlp_only_layers must be a list of layer indices, got ${JSON.stringify(only)}`);
  const dense = new Set(only as number[]);
  const sparseLayers = Array.from({ length: numLayers }, (_, i) => i).filter((i) => !dense.has(i) && (i + 1) % step === 0);
  const norm = raw['norm_topk_prob'] ?? false;
  if (typeof norm !== 'boolean') fail(`norm_topk_prob must be a boolean, got ${JSON.stringify(norm)}`);
  return { naming: 'qwen3_moe', numExperts, topK, normTopK: norm, expertIntermediateSize: int(raw, 'moe_intermediate_size'), sparseLayers };
}

export interface ParseConfigOptions {
  /** Whether the checkpoint's tensor listing holds lm_head.weight (decides tying when config.json is silent). */
  readonly hasLmHead: boolean;
}

/** Parses config.json text (and generation_config.json text, or null) into a frozen ModelConfig. */
export function parseConfig(configText: string, generationText: string | null, opts: ParseConfigOptions): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(configText);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) fail('not a JSON object');
  const modelType = raw['model_type'];
  if (typeof modelType !== 'string' || !(FAMILIES as readonly string[]).includes(modelType)) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [
      CONFIG_FILE,
      `model_type ${JSON.stringify(modelType ?? null)} is not supported; supported: ${FAMILIES.join(', ')}`,
    ]);
  }
  const family = modelType as Family;
  const act = raw['hidden_act'] ?? 'silu';
  if (act !== 'silu') throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [CONFIG_FILE, `hidden_act ${JSON.stringify(act)} is not supported; supported: silu`]);
  if (raw['mlp_bias'] === true) throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [CONFIG_FILE, 'mlp_bias true is not supported']);

  const hiddenSize = int(raw, 'hidden_size');
  const numHeads = int(raw, 'num_attention_heads');
  const numKvHeads = int(raw, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) fail(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  // head_dim: explicit in Qwen3 and newer Llama/Mistral configs (may be null); otherwise hidden / heads.
  const headDimRaw = raw['head_dim'];
  let headDim: number;
  if (headDimRaw === null || headDimRaw === undefined) {
    if (hiddenSize % numHeads !== 0) fail(`hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not given`);
    headDim = hiddenSize / numHeads;
  } else {
    headDim = int(raw, 'head_dim');
  }
  if (headDim % 2 !== 0) fail(`head_dim (${headDim}) must be even for rotary embeddings`);

  // Tying: an explicit flag wins; when absent, a checkpoint without lm_head.weight is tied.
  const tieRaw = raw['tie_word_embeddings'];
  const tieEmbeddings = typeof tieRaw === 'boolean' ? tieRaw : !opts.hasLmHead;

  // Qwen2 always has q/k/v bias and its config has no attention_bias key; the others read the key.
  const attentionBias = family === 'qwen2' ? true : family === 'mistral' || family === 'mixtral' ? false : raw['attention_bias'] === true;

  let gen: Json = {};
  if (generationText !== null) {
    try {
      const g: unknown = JSON.parse(generationText);
      if (isObject(g)) gen = g;
    } catch (e) {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', ['generation_config.json', `not valid JSON (${(e as Error).message})`]);
    }
  }
  const eosTokenIds = [...new Set([...ids(raw['eos_token_id']), ...ids(gen['eos_token_id'])])];
  const bos = raw['bos_token_id'] ?? gen['bos_token_id'];

  const numLayers = int(raw, 'num_hidden_layers');
  const moe = parseMoe(raw, family, numLayers);
  const cfg: ModelConfig = {
    family,
    hiddenSize,
    intermediateSize: int(raw, 'intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int(raw, 'vocab_size'),
    maxPositions: int(raw, 'max_position_embeddings', 2048),
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-6),
    ropeTheta: num(raw, 'rope_theta', 10000),
    ropeScaling: parseRopeScaling(raw['rope_scaling']),
    tieEmbeddings,
    attentionBias,
    qkNorm: family === 'qwen3' || family === 'qwen3_moe',
    bosTokenId: typeof bos === 'number' && Number.isInteger(bos) ? bos : null,
    eosTokenIds,
    ...(moe !== null ? { moe } : {}),
  };
  return Object.freeze(cfg);
}
