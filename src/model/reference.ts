// The correctness oracle: a plain TypeScript forward pass of the Llama family as transformers'
// modeling_llama / modeling_qwen2 / modeling_qwen3 / modeling_mistral compute it. Slow and obvious
// on purpose: one token at a time against a KV cache, float64 activations and accumulation, no
// tricks shared with the ONNX graph builder, so a bug there cannot hide here too.

import { EMBED_TOKENS, FINAL_NORM, isMoeLayer, layerTensorNames, lmHeadName, moeTensorNames } from './tensor-names.ts';
import type { Checkpoint, ModelConfig } from './types.ts';

interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  o: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  /** A routed layer's router and experts (then gate/up/down above are empty). */
  moe: MoeWeights | null;
}

interface MoeWeights {
  router: Float32Array;
  gate: Float32Array[];
  up: Float32Array[];
  down: Float32Array[];
}

interface Weights {
  embed: Float32Array;
  layers: LayerWeights[];
  norm: Float32Array;
  lmHead: Float32Array;
}

/** Per-layer keys and values of the positions seen so far ([pos][kvHeads*headDim], float64). */
export interface ReferenceCache {
  readonly keys: Float64Array[][];
  readonly values: Float64Array[][];
  /** Number of positions held. */
  length: number;
}

/**
 * RoPE inverse frequencies, HF rotate_half convention: inv_freq[i] = theta^(-2i/d), i < d/2, with
 * rope_scaling applied (transformers modeling_rope_utils: _compute_llama3_parameters, linear).
 */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const half = cfg.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / cfg.ropeTheta ** ((2 * i) / cfg.headDim);
  const rs = cfg.ropeScaling;
  if (rs === null || rs.type === 'default') return inv;
  if (rs.type === 'linear') return inv.map((f) => f / rs.factor);
  const factor = rs.factor;
  const low = rs.lowFreqFactor ?? 1;
  const high = rs.highFreqFactor ?? 4;
  const oldCtx = rs.originalMaxPositions ?? 8192;
  const lowFreqWavelen = oldCtx / low;
  const highFreqWavelen = oldCtx / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f; // high frequency: unchanged
    if (wavelen > lowFreqWavelen) return f / factor; // low frequency: scaled
    const smooth = (oldCtx / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

const weightCache = new WeakMap<Checkpoint, Weights>();

function loadWeights(ckpt: Checkpoint): Weights {
  const cached = weightCache.get(ckpt);
  if (cached) return cached;
  const cfg = ckpt.config;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const n = layerTensorNames(i);
    const moe = isMoeLayer(cfg, i) ? loadMoe(ckpt, i) : null;
    const dense = (name: string): Float32Array => (moe === null ? ckpt.read(name) : new Float32Array(0));
    layers.push({
      inputNorm: ckpt.read(n.inputNorm),
      q: ckpt.read(n.q),
      k: ckpt.read(n.k),
      v: ckpt.read(n.v),
      qBias: cfg.attentionBias ? ckpt.read(n.qBias) : null,
      kBias: cfg.attentionBias ? ckpt.read(n.kBias) : null,
      vBias: cfg.attentionBias ? ckpt.read(n.vBias) : null,
      qNorm: cfg.qkNorm ? ckpt.read(n.qNorm) : null,
      kNorm: cfg.qkNorm ? ckpt.read(n.kNorm) : null,
      o: ckpt.read(n.o),
      postNorm: ckpt.read(n.postNorm),
      gate: dense(n.gate),
      up: dense(n.up),
      down: dense(n.down),
      moe,
    });
  }
  const embed = ckpt.read(EMBED_TOKENS);
  const w: Weights = { embed, layers, norm: ckpt.read(FINAL_NORM), lmHead: cfg.tieEmbeddings ? embed : ckpt.read(lmHeadName(cfg)) };
  weightCache.set(ckpt, w);
  return w;
}

function loadMoe(ckpt: Checkpoint, i: number): MoeWeights {
  const m = moeTensorNames(ckpt.config, i);
  const experts = Array.from({ length: ckpt.config.moe?.numExperts ?? 0 }, (_, e) => e);
  return { router: ckpt.read(m.router), gate: experts.map((e) => ckpt.read(m.gate(e))), up: experts.map((e) => ckpt.read(m.up(e))), down: experts.map((e) => ckpt.read(m.down(e))) };
}

/** y = W x (+ b), W stored [out, in] row-major as HF Linear keeps it. */
function linear(w: Float32Array, x: Float64Array, out: number, bias: Float32Array | null = null): Float64Array {
  const inDim = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    const base = o * inDim;
    for (let i = 0; i < inDim; i++) s += w[base + i]! * x[i]!;
    y[o] = s + (bias ? bias[o]! : 0);
  }
  return y;
}

/** RMSNorm over `x[off, off+n)`: x / sqrt(mean(x²) + eps) * weight (LlamaRMSNorm). */
function rmsNorm(x: Float64Array, weight: Float32Array, eps: number, off = 0, n = x.length): Float64Array {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i]! * x[off + i]!;
  const r = 1 / Math.sqrt(ss / n + eps);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) y[i] = x[off + i]! * r * weight[i]!;
  return y;
}

/** In place: each head's vector [h*d, (h+1)*d) rotated by rotate_half RoPE at position `pos`. */
function applyRope(x: Float64Array, heads: number, d: number, pos: number, invFreq: Float64Array): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const ang = pos * invFreq[i]!;
    const c = Math.cos(ang);
    const s = Math.sin(ang);
    for (let h = 0; h < heads; h++) {
      const a = x[h * d + i]!;
      const b = x[h * d + half + i]!;
      x[h * d + i] = a * c - b * s;
      x[h * d + half + i] = b * c + a * s;
    }
  }
}

/** Per-head RMSNorm (Qwen3 q_norm / k_norm), in place. */
function headNorm(x: Float64Array, heads: number, d: number, weight: Float32Array, eps: number): void {
  for (let h = 0; h < heads; h++) x.set(rmsNorm(x, weight, eps, h * d, d), h * d);
}

const silu = (v: number): number => v / (1 + Math.exp(-v));

/** SwiGLU MLP: down(silu(gate x) * up x). */
function swiglu(gate: Float32Array, up: Float32Array, down: Float32Array, x: Float64Array, inter: number, h: number): Float64Array {
  const g = linear(gate, x, inter);
  const u = linear(up, x, inter);
  for (let i = 0; i < g.length; i++) g[i] = silu(g[i]!) * u[i]!;
  return linear(down, g, h);
}

/**
 * The routed MLP as transformers' Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock compute it:
 * softmax over every expert's router logit, the top k (ties to the lower index, as torch.topk),
 * renormalised to sum 1 when normTopK, each chosen expert's SwiGLU output weighted and summed.
 */
function routedMlp(w: MoeWeights, cfg: ModelConfig, x: Float64Array): Float64Array {
  const moe = cfg.moe!;
  const logits = linear(w.router, x, moe.numExperts);
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  const p = logits.map((v) => Math.exp(v - max));
  for (const v of p) sum += v;
  const order = Array.from(p, (v, e) => [v / sum, e] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, moe.topK);
  const total = order.reduce((a, [v]) => a + v, 0);
  const y = new Float64Array(cfg.hiddenSize);
  for (const [prob, e] of order) {
    const weight = moe.normTopK ? prob / total : prob;
    const out = swiglu(w.gate[e]!, w.up[e]!, w.down[e]!, x, moe.expertIntermediateSize, cfg.hiddenSize);
    for (let i = 0; i < y.length; i++) y[i]! += weight * out[i]!;
  }
  return y;
}

/** A checkpoint's weights loaded once, run one token at a time. */
export class ReferenceModel {
  readonly config: ModelConfig;
  readonly #w: Weights;
  readonly #invFreq: Float64Array;

  constructor(ckpt: Checkpoint) {
    this.config = ckpt.config;
    this.#w = loadWeights(ckpt);
    this.#invFreq = ropeInvFreq(ckpt.config);
  }

  newCache(): ReferenceCache {
    return { keys: this.#w.layers.map(() => []), values: this.#w.layers.map(() => []), length: 0 };
  }

  /** Runs one token at the cache's next position; returns the final hidden state (before the final norm). */
  step(token: number, cache: ReferenceCache): Float64Array {
    const cfg = this.config;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d, rmsNormEps: eps } = cfg;
    if (!Number.isInteger(token) || token < 0 || token >= cfg.vocabSize) throw new RangeError(`token ${token} is outside the vocabulary (${cfg.vocabSize})`);
    const pos = cache.length;
    const x = new Float64Array(h);
    for (let i = 0; i < h; i++) x[i] = this.#w.embed[token * h + i]!;
    const group = nh / nkv;
    const scale = 1 / Math.sqrt(d);
    for (let l = 0; l < this.#w.layers.length; l++) {
      const L = this.#w.layers[l]!;
      const xn = rmsNorm(x, L.inputNorm, eps);
      const q = linear(L.q, xn, nh * d, L.qBias);
      const k = linear(L.k, xn, nkv * d, L.kBias);
      const v = linear(L.v, xn, nkv * d, L.vBias);
      if (L.qNorm && L.kNorm) {
        headNorm(q, nh, d, L.qNorm, eps);
        headNorm(k, nkv, d, L.kNorm, eps);
      }
      applyRope(q, nh, d, pos, this.#invFreq);
      applyRope(k, nkv, d, pos, this.#invFreq);
      const keys = cache.keys[l]!;
      const values = cache.values[l]!;
      keys.push(k);
      values.push(v);
      // Causal attention: this position sees itself and every earlier one (all of the cache).
      const attn = new Float64Array(nh * d);
      const scores = new Float64Array(keys.length);
      for (let hh = 0; hh < nh; hh++) {
        const kvh = Math.floor(hh / group);
        let max = -Infinity;
        for (let t = 0; t < keys.length; t++) {
          const kt = keys[t]!;
          let s = 0;
          for (let i = 0; i < d; i++) s += q[hh * d + i]! * kt[kvh * d + i]!;
          scores[t] = s * scale;
          if (scores[t]! > max) max = scores[t]!;
        }
        let sum = 0;
        for (let t = 0; t < keys.length; t++) {
          scores[t] = Math.exp(scores[t]! - max);
          sum += scores[t]!;
        }
        for (let t = 0; t < keys.length; t++) {
          const p = scores[t]! / sum;
          const vt = values[t]!;
          for (let i = 0; i < d; i++) attn[hh * d + i]! += p * vt[kvh * d + i]!;
        }
      }
      const o = linear(L.o, attn, h);
      for (let i = 0; i < h; i++) x[i]! += o[i]!;
      const xn2 = rmsNorm(x, L.postNorm, eps);
      const down = L.moe !== null ? routedMlp(L.moe, cfg, xn2) : swiglu(L.gate, L.up, L.down, xn2, cfg.intermediateSize, h);
      for (let i = 0; i < h; i++) x[i]! += down[i]!;
    }
    cache.length++;
    return x;
  }

  /** The final RMSNorm of a hidden state (what an embedding pools: the last stage's hidden_normed). */
  normed(hidden: Float64Array): Float64Array {
    return rmsNorm(hidden, this.#w.norm, this.config.rmsNormEps);
  }

  /** Final RMSNorm then lm_head (embed_tokens when tied): logits as fp32. */
  logits(hidden: Float64Array): Float32Array {
    const cfg = this.config;
    const xn = rmsNorm(hidden, this.#w.norm, cfg.rmsNormEps);
    const out = new Float32Array(cfg.vocabSize);
    const h = cfg.hiddenSize;
    const w = this.#w.lmHead;
    for (let v = 0; v < cfg.vocabSize; v++) {
      let s = 0;
      const base = v * h;
      for (let i = 0; i < h; i++) s += w[base + i]! * xn[i]!;
      out[v] = s;
    }
    return out;
  }
}

/** Logits for every position of `tokens` (one Float32Array[vocab] each), from an empty cache. */
export function referenceLogits(ckpt: Checkpoint, tokens: readonly number[]): Float32Array[] {
  const m = new ReferenceModel(ckpt);
  const cache = m.newCache();
  return tokens.map((t) => m.logits(m.step(t, cache)));
}

/** Final-normed hidden states of every position of `tokens` (one Float64Array[hidden] each), from an empty cache. */
export function referenceHiddenStates(ckpt: Checkpoint, tokens: readonly number[]): Float64Array[] {
  const m = new ReferenceModel(ckpt);
  const cache = m.newCache();
  return tokens.map((t) => m.normed(m.step(t, cache)));
}

/** Index of the largest value; ties go to the lowest index (what argmax does everywhere). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * Greedy decoding with an incremental KV cache: up to `maxTokens` new tokens after `prompt`,
 * stopping after (and including) the first token in `stopIds`.
 */
export function referenceGreedy(ckpt: Checkpoint, prompt: readonly number[], maxTokens: number, stopIds: readonly number[]): number[] {
  if (prompt.length === 0) throw new RangeError('referenceGreedy needs a non-empty prompt');
  const m = new ReferenceModel(ckpt);
  const cache = m.newCache();
  let hidden: Float64Array = new Float64Array(0);
  for (const t of prompt) hidden = m.step(t, cache);
  const out: number[] = [];
  const stop = new Set(stopIds);
  while (out.length < maxTokens) {
    const next = argmax(m.logits(hidden));
    out.push(next);
    if (stop.has(next) || out.length >= maxTokens) break;
    hidden = m.step(next, cache);
  }
  return out;
}
