// Rotary embedding tables computed in TypeScript (float64, then stored fp32), so every scaling
// variant reaches onnxruntime as plain cos/sin caches [maxPositions, headDim/2] — the layout both
// GroupQueryAttention(do_rotary) and our plain-op path read (non-interleaved, rotate_half style).

import type { ModelConfig } from '../types.ts';

/**
 * inv_freq per rotary pair. "llama3" follows transformers' _compute_llama3_parameters; "linear"
 * divides every frequency by the factor (same as dividing positions).
 */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const half = cfg.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
  const s = cfg.ropeScaling;
  if (s === null || s.type === 'default') return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  const low = s.lowFreqFactor ?? 1;
  const high = s.highFreqFactor ?? 4;
  const orig = s.originalMaxPositions ?? 8192;
  const lowWavelen = orig / low;
  const highWavelen = orig / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (orig / wavelen - low) / (high - low);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/**
 * Rows of the rotary tables a shard builds: the context it serves (the gateway's contextLength,
 * sent with each assignment), never past the model's max_position_embeddings. Building them for
 * the model's maximum instead costs 131072 × 64 × 2 × 4 B = 67 MB per stage on Llama 3.x (issue 20).
 * The planner counts the same rows (src/cluster/model-costs.ts).
 */
export function ropePositions(cfg: ModelConfig, contextLength?: number): number {
  return Math.max(1, Math.min(contextLength ?? cfg.maxPositions, cfg.maxPositions));
}

/** cos and sin caches, each [positions, headDim/2] fp32. */
export function ropeTables(cfg: ModelConfig, positions: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(cfg);
  const half = inv.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * (inv[i] as number);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}
