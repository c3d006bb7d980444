// GGUF (llama.cpp's names and metadata keys, as convert_hf_to_gguf.py writes them) → the Hugging
// Face layout hearth's checkpoint reader speaks: config.json fields from `<arch>.*` keys, tensor
// names `blk.N.attn_q.weight` → `model.layers.N.self_attn.q_proj.weight`, and which tensors carry
// llama.cpp's rotary row permutation (LlamaModel.permute: q/k of the "llama" architecture are
// reordered so rotary acts on adjacent pairs; hearth, like transformers, rotates half-heads).

import { HearthError } from '../errors/index.ts';
import { ggmlByteSize } from './ggml-types.ts';
import { metaNumber, metaString, type GgufModel, type GgufTensor } from './gguf-file.ts';

/** GGUF general.architecture → HF model_type. Mistral GGUFs are written as "llama". */
const ARCH_FAMILY: Readonly<Record<string, string>> = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2', qwen3: 'qwen3', qwen3moe: 'qwen3_moe' };

const TOP: Readonly<Record<string, string>> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

const LAYER: Readonly<Record<string, string>> = {
  'attn_norm.weight': 'input_layernorm.weight',
  'attn_q.weight': 'self_attn.q_proj.weight',
  'attn_k.weight': 'self_attn.k_proj.weight',
  'attn_v.weight': 'self_attn.v_proj.weight',
  'attn_q.bias': 'self_attn.q_proj.bias',
  'attn_k.bias': 'self_attn.k_proj.bias',
  'attn_v.bias': 'self_attn.v_proj.bias',
  'attn_output.weight': 'self_attn.o_proj.weight',
  'attn_q_norm.weight': 'self_attn.q_norm.weight',
  'attn_k_norm.weight': 'self_attn.k_norm.weight',
  'ffn_norm.weight': 'post_attention_layernorm.weight',
  'ffn_gate.weight': 'mlp.gate_proj.weight',
  'ffn_up.weight': 'mlp.up_proj.weight',
  'ffn_down.weight': 'mlp.down_proj.weight',
};

/** Recomputed by hearth from the config (llama3 rope factors) rather than read. */
const DERIVED = new Set(['rope_freqs.weight']);

export interface MappedTensor {
  readonly hfName: string;
  readonly tensor: GgufTensor;
  /** HF shape (ggml dims reversed). */
  readonly shape: readonly number[];
  /** Heads whose rows llama.cpp permuted (undo on decode); null when stored as HF has it. */
  readonly unpermuteHeads: number | null;
}

export interface HfView {
  readonly config: Record<string, unknown>;
  readonly generationConfig: Record<string, unknown>;
  readonly tensors: readonly MappedTensor[];
}

const BLK_RE = /^blk\.(\d+)\.(.+)$/;
/** Routed experts (convert_hf_to_gguf Qwen3MoeModel / MixtralModel): all E experts of a projection
 *  stacked in one 3-D tensor; expert e is a contiguous slice of it. */
const EXPS_RE = /^blk\.(\d+)\.ffn_(gate|up|down)_exps\.weight$/;
const ROUTER_RE = /^blk\.(\d+)\.ffn_gate_inp\.weight$/;

/** The HF name of a GGUF tensor, or null for one hearth recomputes. Throws on one it cannot place. */
export function hfTensorName(name: string, where: string): string | null {
  const top = TOP[name];
  if (top !== undefined) return top;
  if (DERIVED.has(name)) return null;
  const m = BLK_RE.exec(name);
  const inner = m === null ? undefined : LAYER[m[2] as string];
  if (m === null || inner === undefined) throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [where, `tensor ${name} has no place in the families hearth runs (llama, qwen2, qwen3, mistral)`]);
  return `model.layers.${m[1]}.${inner}`;
}

/**
 * llama3 rope scaling is stored in GGUF only as the per-frequency factors (rope_freqs). Find the
 * transformers parameters that give exactly those factors: factor is their largest value; the
 * low/high frequency factors and original context are Llama 3's published ones (1, 4, 8192),
 * checked against the tensor so another choice is refused instead of run wrong.
 */
function llama3Scaling(freqs: Float32Array, headDim: number, theta: number, original: number | undefined): Record<string, unknown> | null {
  const factor = Math.max(...freqs);
  const cand = { rope_type: 'llama3', factor, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: original ?? 8192 };
  for (let i = 0; i < headDim / 2; i++) {
    const freq = 1 / theta ** ((2 * i) / headDim);
    const wavelen = (2 * Math.PI) / freq;
    const old = cand.original_max_position_embeddings;
    let want: number;
    if (wavelen < old / 4) want = 1;
    else if (wavelen > old / 1) want = factor;
    else {
      const smooth = (old / wavelen - 1) / 3;
      want = 1 / ((1 - smooth) / factor + smooth);
    }
    if (Math.abs(want - (freqs[i] as number)) > 1e-3 * Math.max(1, want)) return null;
  }
  return cand;
}

export function hfView(model: GgufModel, where: string, ropeFreqs: Float32Array | null): HfView {
  const meta = model.metadata;
  const arch = metaString(meta, 'general.architecture') ?? '';
  const experts = metaNumber(meta, `${arch}.expert_count`) ?? 0;
  // Mixtral is written as architecture "llama" with experts.
  const family = arch === 'llama' && experts > 0 ? 'mixtral' : ARCH_FAMILY[arch];
  if (family === undefined) throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [where, `GGUF architecture ${JSON.stringify(arch)}; hearth runs ${Object.keys(ARCH_FAMILY).join(', ')}`]);
  const num = (k: string): number | undefined => metaNumber(meta, `${arch}.${k}`);
  const need = (k: string): number => {
    const v = num(k);
    if (v === undefined) throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [where, `GGUF metadata ${arch}.${k} is missing`]);
    return v;
  };
  const hidden = need('embedding_length');
  const heads = need('attention.head_count');
  const kvHeads = num('attention.head_count_kv') ?? heads;
  const headDim = num('attention.key_length') ?? hidden / heads;
  const embd = model.tensors.get('token_embd.weight');
  const tokens = meta.get('tokenizer.ggml.tokens');
  const vocab = num('vocab_size') ?? embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : undefined);
  const theta = num('rope.freq_base') ?? 10000;
  const config: Record<string, unknown> = {
    model_type: family,
    architectures: [{ llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', qwen3_moe: 'Qwen3MoeForCausalLM', mixtral: 'MixtralForCausalLM' }[family]],
    hidden_size: hidden,
    intermediate_size: need('feed_forward_length'),
    num_hidden_layers: need('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: vocab,
    max_position_embeddings: num('context_length') ?? 2048,
    rms_norm_eps: num('attention.layer_norm_rms_epsilon') ?? 1e-6,
    rope_theta: theta,
    tie_word_embeddings: !model.tensors.has('output.weight'),
  };
  if (family === 'qwen3_moe') {
    Object.assign(config, {
      num_experts: experts, num_experts_per_tok: num('expert_used_count') ?? 2, moe_intermediate_size: num('expert_feed_forward_length'),
      // llama.cpp's qwen3moe graph always renormalises the top-k weights (norm_w = true).
      norm_topk_prob: meta.get(`${arch}.expert_weights_norm`) ?? true, decoder_sparse_step: 1, mlp_only_layers: [],
    });
  } else if (family === 'mixtral') {
    Object.assign(config, { num_local_experts: experts, num_experts_per_tok: num('expert_used_count') ?? 2 });
  }
  const scalingType = metaString(meta, `${arch}.rope.scaling.type`);
  if (scalingType === 'linear') config['rope_scaling'] = { rope_type: 'linear', factor: num('rope.scaling.factor') ?? 1 };
  else if (scalingType !== undefined && scalingType !== 'none') {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [where, `rope scaling ${scalingType}`]);
  }
  if (ropeFreqs !== null) {
    const s = llama3Scaling(ropeFreqs, headDim, theta, num('rope.scaling.original_context_length'));
    if (s === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [where, 'rope_freqs.weight that is not Llama 3 rope scaling (low 1, high 4)']);
    config['rope_scaling'] = s;
  }
  const bos = metaNumber(meta, 'tokenizer.ggml.bos_token_id');
  const eos = metaNumber(meta, 'tokenizer.ggml.eos_token_id');
  if (bos !== undefined) config['bos_token_id'] = bos;
  if (eos !== undefined) config['eos_token_id'] = eos;
  const generationConfig: Record<string, unknown> = {};
  if (bos !== undefined) generationConfig['bos_token_id'] = bos;
  if (eos !== undefined) generationConfig['eos_token_id'] = eos;

  // convert_hf_to_gguf permutes q/k for LlamaModel (llama, mistral) only; Qwen keeps HF order.
  const permuted = arch === 'llama' || arch === 'mistral';
  const tensors: MappedTensor[] = [];
  const block = family === 'mixtral' ? 'block_sparse_moe' : 'mlp';
  const proj = family === 'mixtral' ? { gate: 'w1', up: 'w3', down: 'w2' } : { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
  for (const t of model.tensors.values()) {
    const router = ROUTER_RE.exec(t.name);
    if (router !== null) {
      tensors.push({ hfName: `model.layers.${router[1]}.${block}.gate.weight`, tensor: t, shape: [...t.dims].reverse(), unpermuteHeads: null });
      continue;
    }
    const exps = EXPS_RE.exec(t.name);
    if (exps !== null) {
      const [cols, rows, n] = t.dims as [number, number, number];
      const bytes = ggmlByteSize(t.type, rows * cols);
      for (let e = 0; e < n; e++) {
        const start = bytes === null ? t.byteStart : t.byteStart + e * bytes;
        tensors.push({
          hfName: `model.layers.${exps[1]}.${block}.experts.${e}.${proj[exps[2] as 'gate' | 'up' | 'down']}.weight`,
          tensor: { ...t, dims: [cols, rows], byteStart: start, byteEnd: bytes === null ? null : start + bytes },
          shape: [rows, cols],
          unpermuteHeads: null,
        });
      }
      continue;
    }
    const hfName = hfTensorName(t.name, where);
    if (hfName === null) continue;
    const isQ = /\.attn_q\.(weight|bias)$/.test(t.name);
    const isK = /\.attn_k\.(weight|bias)$/.test(t.name);
    tensors.push({
      hfName,
      tensor: t,
      shape: [...t.dims].reverse(),
      unpermuteHeads: permuted && isQ ? heads : permuted && isK ? kvHeads : null,
    });
  }
  return { config, generationConfig, tensors };
}
