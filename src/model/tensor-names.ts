// Hugging Face tensor names for the Llama family (LlamaForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM, MistralForCausalLM all share this layout) and the shapes they must have.
// Linear weights are stored [out, in] (torch.nn.Linear.weight), so q_proj is [heads*headDim, hidden].

import type { ModelConfig } from './types.ts';

export const EMBED_TOKENS = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

/** The per-layer tensor names, keyed by role, for layer `i`. */
export function layerTensorNames(i: number) {
  const p = `model.layers.${i}.`;
  return {
    inputNorm: `${p}input_layernorm.weight`,
    q: `${p}self_attn.q_proj.weight`,
    k: `${p}self_attn.k_proj.weight`,
    v: `${p}self_attn.v_proj.weight`,
    qBias: `${p}self_attn.q_proj.bias`,
    kBias: `${p}self_attn.k_proj.bias`,
    vBias: `${p}self_attn.v_proj.bias`,
    qNorm: `${p}self_attn.q_norm.weight`,
    kNorm: `${p}self_attn.k_norm.weight`,
    o: `${p}self_attn.o_proj.weight`,
    postNorm: `${p}post_attention_layernorm.weight`,
    gate: `${p}mlp.gate_proj.weight`,
    up: `${p}mlp.up_proj.weight`,
    down: `${p}mlp.down_proj.weight`,
  } as const;
}
export type LayerTensorNames = ReturnType<typeof layerTensorNames>;

/** Whether layer `i`'s MLP is routed experts (see MoeConfig.sparseLayers). */
export function isMoeLayer(cfg: ModelConfig, i: number): boolean {
  return cfg.moe !== undefined && cfg.moe.sparseLayers.includes(i);
}

/**
 * A routed layer's tensors: the router [E, H] and expert e's gate/up [I, H] and down [H, I].
 * qwen3_moe (Qwen3MoeSparseMoeBlock): mlp.gate, mlp.experts.e.{gate,up,down}_proj; mixtral
 * (MixtralSparseMoeBlock): block_sparse_moe.gate, block_sparse_moe.experts.e.{w1 = gate, w3 = up,
 * w2 = down}.
 */
export function moeTensorNames(cfg: ModelConfig, i: number) {
  const mixtral = cfg.moe?.naming === 'mixtral';
  const p = `model.layers.${i}.${mixtral ? 'block_sparse_moe' : 'mlp'}.`;
  return {
    router: `${p}gate.weight`,
    gate: (e: number) => `${p}experts.${e}.${mixtral ? 'w1' : 'gate_proj'}.weight`,
    up: (e: number) => `${p}experts.${e}.${mixtral ? 'w3' : 'up_proj'}.weight`,
    down: (e: number) => `${p}experts.${e}.${mixtral ? 'w2' : 'down_proj'}.weight`,
  } as const;
}

/** The name the lm_head reads from: embed_tokens when embeddings are tied. */
export function lmHeadName(cfg: ModelConfig): string {
  return cfg.tieEmbeddings ? EMBED_TOKENS : LM_HEAD;
}

/**
 * Every tensor a layer needs, in a fixed order, with its expected shape. The order is the one the
 * generator writes, so generated files are laid out layer by layer.
 */
export function layerTensorShapes(cfg: ModelConfig, i: number): [string, number[]][] {
  const n = layerTensorNames(i);
  const h = cfg.hiddenSize;
  const qDim = cfg.numHeads * cfg.headDim;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const out: [string, number[]][] = [
    [n.inputNorm, [h]],
    [n.q, [qDim, h]],
    [n.k, [kvDim, h]],
    [n.v, [kvDim, h]],
  ];
  if (cfg.attentionBias) out.push([n.qBias, [qDim]], [n.kBias, [kvDim]], [n.vBias, [kvDim]]);
  if (cfg.qkNorm) out.push([n.qNorm, [cfg.headDim]], [n.kNorm, [cfg.headDim]]);
  out.push([n.o, [h, qDim]], [n.postNorm, [h]]);
  if (cfg.moe !== undefined && isMoeLayer(cfg, i)) {
    const m = moeTensorNames(cfg, i);
    const inter = cfg.moe.expertIntermediateSize;
    out.push([m.router, [cfg.moe.numExperts, h]]);
    for (let e = 0; e < cfg.moe.numExperts; e++) out.push([m.gate(e), [inter, h]], [m.up(e), [inter, h]], [m.down(e), [h, inter]]);
    return out;
  }
  out.push([n.gate, [cfg.intermediateSize, h]], [n.up, [cfg.intermediateSize, h]], [n.down, [h, cfg.intermediateSize]]);
  return out;
}

/**
 * Tensors (with expected shapes) that the stage running layers [start, end) needs: the token
 * embedding on the first stage, final norm + lm_head on the last (embed_tokens again when tied).
 */
export function tensorShapesForRange(cfg: ModelConfig, start: number, end: number): [string, number[]][] {
  const out: [string, number[]][] = [];
  const seen = new Set<string>();
  const add = (name: string, shape: number[]): void => {
    if (seen.has(name)) return;
    seen.add(name);
    out.push([name, shape]);
  };
  if (start === 0) add(EMBED_TOKENS, [cfg.vocabSize, cfg.hiddenSize]);
  for (let i = start; i < end; i++) for (const [name, shape] of layerTensorShapes(cfg, i)) add(name, shape);
  if (end === cfg.numLayers) {
    add(FINAL_NORM, [cfg.hiddenSize]);
    add(lmHeadName(cfg), [cfg.vocabSize, cfg.hiddenSize]);
  }
  return out;
}

/** All tensors of the whole model, in file order. */
export function allTensorShapes(cfg: ModelConfig): [string, number[]][] {
  return tensorShapesForRange(cfg, 0, cfg.numLayers);
}
