// A Hugging Face checkpoint folder (safetensors + config.json + tokenizer.json) → a GGUF that
// llama.cpp loads, quantized the way `llama-quantize model.gguf Q4_0` does it: every 2-D weight
// Q4_0, norms and biases f32, and the token embedding of a tied model (it doubles as the output
// matrix) in Q8_0 — llama-quantize gives the output matrix Q6_K and falls back to Q8_0 when the
// row width is not a multiple of 256 (896 for Qwen2.5-0.5B); this writer has no K-quants, so it
// uses Q8_0 for that matrix always. Tensor names and metadata follow convert_hf_to_gguf.py.

import fs from 'node:fs';
import path from 'node:path';
import { f32, str, u32, writeGguf, type MetaValue, type TensorPlan } from './gguf-file.ts';
import { byteSize, encode, GGML, type GgmlType } from './ggml-quant.ts';
import { listTensors, readF32, type TensorRef } from './safetensors-read.ts';
import { tokenizerMeta } from './tokenizer-meta.ts';

export const QUANTS = ['q4_0', 'q8_0', 'f16', 'f32', 'q4_k_m'] as const;
export type Quant = (typeof QUANTS)[number];

const WEIGHT_TYPE: Record<Quant, GgmlType> = { q4_0: GGML.Q4_0, q8_0: GGML.Q8_0, f16: GGML.F16, f32: GGML.F32, q4_k_m: GGML.Q4_K };
/** llama_ftype for general.file_type. */
const FILE_TYPE: Record<Quant, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15 };

interface HfConfig {
  model_type: string;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number | null;
  vocab_size: number;
  max_position_embeddings?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  rope_scaling?: { rope_type?: string; type?: string; factor?: number; low_freq_factor?: number; high_freq_factor?: number; original_max_position_embeddings?: number } | null;
  tie_word_embeddings?: boolean;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  // Mixture of experts (issue 23): qwen3_moe and mixtral.
  num_experts?: number;
  num_local_experts?: number;
  num_experts_per_tok?: number;
  moe_intermediate_size?: number;
  mlp_only_layers?: number[];
  decoder_sparse_step?: number;
}

/** HF model_type → llama.cpp architecture. Mistral runs as llama there. */
const ARCH: Record<string, string> = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2', qwen3: 'qwen3', qwen3_moe: 'qwen3moe', mixtral: 'llama' };

export interface ConvertResult {
  readonly file: string;
  readonly bytes: number;
  readonly tensors: number;
  readonly arch: string;
  readonly types: Record<string, number>;
}

/**
 * llama.cpp's "llama" architecture applies rotary to interleaved pairs (x0,x1),(x2,x3)…, HF to
 * the two halves of each head; convert_hf_to_gguf.py (LlamaModel.permute) reorders the rows of
 * q_proj/k_proj so both compute the same thing: new row h·D + 2r + s = old row h·D + s·D/2 + r.
 */
function permuteRows(w: Float32Array, heads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const d = rows / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let r = 0; r < d / 2; r++)
      for (let s = 0; s < 2; s++) {
        const from = (h * d + s * (d / 2) + r) * cols;
        out.set(w.subarray(from, from + cols), (h * d + 2 * r + s) * cols);
      }
  return out;
}

/** Llama 3 rope scaling as llama.cpp takes it: per-frequency factors in a rope_freqs tensor. */
function llama3RopeFactors(cfg: HfConfig, headDim: number): Float32Array {
  const rs = cfg.rope_scaling ?? {};
  const base = cfg.rope_theta ?? 10000;
  const factor = rs.factor ?? 8;
  const low = rs.low_freq_factor ?? 1;
  const high = rs.high_freq_factor ?? 4;
  const old = rs.original_max_position_embeddings ?? 8192;
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) {
    const freq = 1 / base ** ((2 * i) / headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < old / high) out[i] = 1;
    else if (wavelen > old / low) out[i] = factor;
    else {
      const smooth = (old / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

function firstId(v: number | number[] | null | undefined): number | null {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return null;
}

/** The MoE layout of a qwen3_moe / mixtral config (which layers route, HF names), or null. */
function moeOf(cfg: HfConfig): { experts: number; sparse: (i: number) => boolean; naming: { block: string; gate: string; up: string; down: string } } | null {
  if (cfg.model_type === 'mixtral') {
    return { experts: cfg.num_local_experts ?? 8, sparse: () => true, naming: { block: 'block_sparse_moe', gate: 'w1', up: 'w3', down: 'w2' } };
  }
  if (cfg.model_type !== 'qwen3_moe') return null;
  const only = new Set(cfg.mlp_only_layers ?? []);
  const step = cfg.decoder_sparse_step ?? 1;
  // llama.cpp's qwen3moe graph routes every layer: a dense layer cannot be written for it.
  for (let i = 0; i < cfg.num_hidden_layers; i++) if (only.has(i) || (i + 1) % step !== 0) throw new Error(`qwen3moe GGUF: layer ${i} is dense (mlp_only_layers / decoder_sparse_step); llama.cpp routes every layer`);
  return { experts: cfg.num_experts ?? 8, sparse: () => true, naming: { block: 'mlp', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' } };
}

export function convertCheckpoint(dir: string, out: string, quant: Quant = 'q4_0'): ConvertResult {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as HfConfig;
  const genPath = path.join(dir, 'generation_config.json');
  const gen = fs.existsSync(genPath) ? (JSON.parse(fs.readFileSync(genPath, 'utf8')) as Partial<HfConfig>) : {};
  const arch = ARCH[cfg.model_type];
  if (arch === undefined) throw new Error(`model_type ${cfg.model_type} is not supported (${Object.keys(ARCH).join(', ')})`);
  const refs = listTensors(dir);
  const heads = cfg.num_attention_heads;
  const kvHeads = cfg.num_key_value_heads ?? heads;
  const headDim = cfg.head_dim ?? cfg.hidden_size / heads;
  const tied = cfg.tie_word_embeddings ?? !refs.has('lm_head.weight');
  const wType = WEIGHT_TYPE[quant];

  const meta = new Map<string, MetaValue>();
  meta.set('general.architecture', str(arch));
  meta.set('general.name', str(path.basename(path.resolve(dir))));
  meta.set('general.file_type', u32(FILE_TYPE[quant]));
  meta.set('general.quantization_version', u32(2));
  meta.set(`${arch}.context_length`, u32(cfg.max_position_embeddings ?? 2048));
  meta.set(`${arch}.embedding_length`, u32(cfg.hidden_size));
  meta.set(`${arch}.block_count`, u32(cfg.num_hidden_layers));
  meta.set(`${arch}.feed_forward_length`, u32(cfg.intermediate_size));
  meta.set(`${arch}.attention.head_count`, u32(heads));
  meta.set(`${arch}.attention.head_count_kv`, u32(kvHeads));
  meta.set(`${arch}.attention.key_length`, u32(headDim));
  meta.set(`${arch}.attention.value_length`, u32(headDim));
  meta.set(`${arch}.rope.dimension_count`, u32(headDim));
  meta.set(`${arch}.rope.freq_base`, f32(cfg.rope_theta ?? 10000));
  meta.set(`${arch}.attention.layer_norm_rms_epsilon`, f32(cfg.rms_norm_eps ?? 1e-6));
  meta.set(`${arch}.vocab_size`, u32(cfg.vocab_size));
  const ropeKind = cfg.rope_scaling?.rope_type ?? cfg.rope_scaling?.type ?? null;
  if (ropeKind === 'linear') {
    meta.set(`${arch}.rope.scaling.type`, str('linear'));
    meta.set(`${arch}.rope.scaling.factor`, f32(cfg.rope_scaling?.factor ?? 1));
  } else if (ropeKind !== null && ropeKind !== 'default' && ropeKind !== 'llama3') {
    throw new Error(`rope_scaling ${ropeKind} is not supported`);
  }
  const ids = {
    bos: cfg.bos_token_id ?? gen.bos_token_id ?? null,
    eos: firstId(cfg.eos_token_id) ?? firstId(gen.eos_token_id),
    pad: cfg.pad_token_id ?? gen.pad_token_id ?? null,
  };
  for (const [k, v] of tokenizerMeta(dir, cfg.model_type, cfg.vocab_size, ids)) meta.set(k, v);

  const tensors: TensorPlan[] = [];
  const types: Record<string, number> = {};
  const need = (name: string): TensorRef => {
    const r = refs.get(name);
    if (!r) throw new Error(`${dir}: tensor ${name} is missing`);
    return r;
  };
  const add = (name: string, ref: TensorRef | Float32Array | (() => Float32Array), type: GgmlType, dims: number[], transform?: (w: Float32Array) => Float32Array): void => {
    // Q4_0/Q8_0 need whole 32-value blocks per row; llama-quantize falls back for odd widths too.
    // K-quants need whole 256-value super-blocks per row; llama-quantize then uses Q5_0 for Q4_K
    // and Q8_0 for Q6_K (llama_tensor_get_type's fallback).
    const k = (dims[0] as number) % 256 !== 0 ? (type === GGML.Q4_K ? GGML.Q5_0 : type === GGML.Q6_K ? GGML.Q8_0 : type) : type;
    const t = (k === GGML.Q4_0 || k === GGML.Q8_0 || k === GGML.Q5_0) && (dims[0] as number) % 32 !== 0 ? GGML.F16 : k;
    types[t] = (types[t] ?? 0) + 1;
    tensors.push({
      name,
      dims,
      type: t,
      data: () => {
        let w = ref instanceof Float32Array ? ref : typeof ref === 'function' ? ref() : readF32(ref);
        if (transform) w = transform(w);
        const bytes = new Uint8Array(byteSize(t, w.length));
        encode(t, w, bytes);
        return bytes;
      },
    });
  };
  const matrix = (name: string, src: string, transform?: (w: Float32Array) => Float32Array, type: GgmlType = wType): void => {
    const r = need(src);
    add(name, r, type, [r.shape[1] as number, r.shape[0] as number], transform);
  };
  const vector = (name: string, src: string, transform?: (w: Float32Array) => Float32Array): void => {
    const r = need(src);
    add(name, r, GGML.F32, [r.shape[0] as number], transform);
  };

  // Q4_K_M (llama_tensor_get_type): the output matrix (the tied embedding) Q6_K; attn_v and
  // ffn_down Q6_K on the layers use_more_bits picks (first and last eighth, every third between).
  const kM = quant === 'q4_k_m';
  const moreBits = (i: number, n: number): boolean => i < Math.floor(n / 8) || i >= Math.floor((7 * n) / 8) || (i - Math.floor(n / 8)) % 3 === 2;
  const embedType = quant === 'q4_0' ? (tied ? GGML.Q8_0 : GGML.Q4_0) : kM && tied ? GGML.Q6_K : wType;
  matrix('token_embd.weight', 'model.embed_tokens.weight', undefined, embedType);
  if (ropeKind === 'llama3') add('rope_freqs.weight', llama3RopeFactors(cfg, headDim), GGML.F32, [headDim / 2]);
  const permute = arch === 'llama';
  const moe = moeOf(cfg);
  if (moe !== null) {
    meta.set(`${arch}.expert_count`, u32(moe.experts));
    meta.set(`${arch}.expert_used_count`, u32(cfg.num_experts_per_tok ?? 2));
    if (cfg.moe_intermediate_size !== undefined) meta.set(`${arch}.expert_feed_forward_length`, u32(cfg.moe_intermediate_size));
  }
  const qPerm = permute ? (w: Float32Array): Float32Array => permuteRows(w, heads, w.length / (heads * headDim)) : undefined;
  const kPerm = permute ? (w: Float32Array): Float32Array => permuteRows(w, kvHeads, w.length / (kvHeads * headDim)) : undefined;
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const b = `blk.${i}.`;
    vector(b + 'attn_norm.weight', p + 'input_layernorm.weight');
    matrix(b + 'attn_q.weight', p + 'self_attn.q_proj.weight', qPerm);
    matrix(b + 'attn_k.weight', p + 'self_attn.k_proj.weight', kPerm);
    matrix(b + 'attn_v.weight', p + 'self_attn.v_proj.weight', undefined, kM && moreBits(i, cfg.num_hidden_layers) ? GGML.Q6_K : wType);
    matrix(b + 'attn_output.weight', p + 'self_attn.o_proj.weight');
    if (refs.has(p + 'self_attn.q_proj.bias')) {
      vector(b + 'attn_q.bias', p + 'self_attn.q_proj.bias', qPerm && ((w) => permuteRows(w, heads, 1)));
      vector(b + 'attn_k.bias', p + 'self_attn.k_proj.bias', kPerm && ((w) => permuteRows(w, kvHeads, 1)));
      vector(b + 'attn_v.bias', p + 'self_attn.v_proj.bias');
    }
    if (refs.has(p + 'self_attn.q_norm.weight')) {
      vector(b + 'attn_q_norm.weight', p + 'self_attn.q_norm.weight');
      vector(b + 'attn_k_norm.weight', p + 'self_attn.k_norm.weight');
    }
    vector(b + 'ffn_norm.weight', p + 'post_attention_layernorm.weight');
    if (moe !== null && moe.sparse(i)) {
      // Routed experts as llama.cpp's MoE builds them (convert_hf_to_gguf.py Qwen3MoeModel /
      // MixtralModel): the router ffn_gate_inp [H → E], then each projection of all E experts
      // stacked in one 3-D tensor, ffn_{gate,up}_exps [E][I, H] and ffn_down_exps [E][H, I].
      const q = moe.naming;
      matrix(b + 'ffn_gate_inp.weight', `${p}${q.block}.gate.weight`, undefined, GGML.F32);
      for (const [gg, hf] of [['ffn_gate_exps', q.gate], ['ffn_up_exps', q.up], ['ffn_down_exps', q.down]] as const) {
        const refsE = Array.from({ length: moe.experts }, (_, e) => need(`${p}${q.block}.experts.${e}.${hf}.weight`));
        const [rows, cols] = refsE[0]!.shape as [number, number];
        const stack = (): Float32Array => {
          const all = new Float32Array(moe.experts * rows * cols);
          refsE.forEach((r, e) => all.set(readF32(r), e * rows * cols));
          return all;
        };
        add(b + gg + '.weight', stack, gg === 'ffn_down_exps' && kM && moreBits(i, cfg.num_hidden_layers) ? GGML.Q6_K : wType, [cols, rows, moe.experts]);
      }
      continue;
    }
    matrix(b + 'ffn_gate.weight', p + 'mlp.gate_proj.weight');
    matrix(b + 'ffn_up.weight', p + 'mlp.up_proj.weight');
    matrix(b + 'ffn_down.weight', p + 'mlp.down_proj.weight', undefined, kM && moreBits(i, cfg.num_hidden_layers) ? GGML.Q6_K : wType);
  }
  vector('output_norm.weight', 'model.norm.weight');
  if (!tied) matrix('output.weight', 'lm_head.weight', undefined, quant === 'q4_0' ? GGML.Q8_0 : kM ? GGML.Q6_K : wType);

  const bytes = writeGguf(out, meta, tensors);
  return { file: out, bytes, tensors: tensors.length, arch, types };
}
