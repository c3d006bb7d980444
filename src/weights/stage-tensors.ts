// Which tensors a pipeline stage [start, end) needs, decided from HF Llama-family tensor names alone,
// so the gateway can answer without building a model: layer tensors `model.layers.<i>.*`, the
// embedding on the first stage, final norm + lm_head on the last (the embedding instead when the
// head is tied to it: config.json tie_word_embeddings, or no lm_head.weight in the files).

const LAYER_RE = /^model\.layers\.(\d+)\./;
export const EMBED_TENSOR = 'model.embed_tokens.weight';
export const NORM_TENSOR = 'model.norm.weight';
export const LM_HEAD_TENSOR = 'lm_head.weight';

/** The layer a tensor belongs to, or null for embedding/norm/head/other tensors. */
export function layerOf(name: string): number | null {
  const m = LAYER_RE.exec(name);
  return m === null ? null : Number(m[1]);
}

/** `tied`: config.json's tie_word_embeddings when it says; otherwise inferred from lm_head's absence. */
export function stageTensorNames(all: readonly string[], start: number, end: number, numLayers: number, tied?: boolean): string[] {
  const have = new Set(all);
  const tiedHead = tied ?? !have.has(LM_HEAD_TENSOR);
  const first = start === 0;
  const last = end === numLayers;
  const out: string[] = [];
  for (const name of all) {
    const layer = layerOf(name);
    if (layer !== null) {
      if (layer >= start && layer < end) out.push(name);
    } else if (name === EMBED_TENSOR) {
      if (first || (last && tiedHead)) out.push(name);
    } else if (name === NORM_TENSOR) {
      if (last) out.push(name);
    } else if (name === LM_HEAD_TENSOR) {
      if (last && !tiedHead) out.push(name);
    }
    // Anything else (e.g. old checkpoints' rotary inv_freq buffers) is recomputed, not shipped.
  }
  return out;
}
