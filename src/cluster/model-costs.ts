// Turns a checkpoint's tensor table into the planner's ModelCost: bytes per layer as a worker
// will hold them (the engine converts stored f16/bf16 to fp32; int4 keeps 4 bits + one fp32 scale
// per block of 32), KV bytes per layer at the planned context, and the first/last stage extras.

import type { Checkpoint, ModelConfig } from '../model/types.ts';
import type { Quant } from '../runtime/types.ts';
import type { ModelCost } from './planner.ts';

/** int4 MatMulNBits: 0.5 byte per weight + an fp32 scale per 32 (zero points implicit). */
const INT4_BYTES_PER_PARAM = 0.5 + 4 / 32;
/** Runtime, arena and activation headroom every stage needs on top of weights and KV. */
export const STAGE_OVERHEAD_BYTES = 96 * 1024 * 1024;

export interface CostOptions {
  readonly quant: Quant;
  /** Context tokens each stage reserves KV for (all sequences together). */
  readonly kvTokens: number;
}

const LAYER_RE = /\.layers\.(\d+)\./;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Matrices the engine may quantize: 2-D projection weights and the lm_head. Norms, biases and
 *  the embedding gather table stay fp32. */
function heldBytes(name: string, shape: readonly number[], quant: Quant, asHead: boolean): number {
  const n = numel(shape);
  const matrix = shape.length === 2 && (asHead || /proj\.weight$/.test(name) || name === 'lm_head.weight');
  return quant === 'int4' && matrix ? n * INT4_BYTES_PER_PARAM : n * 4;
}

export function kvBytesPerLayer(config: ModelConfig, kvTokens: number): number {
  return 2 * config.numKvHeads * config.headDim * 4 * kvTokens;
}

export function modelCostsFromCheckpoint(ckpt: Checkpoint, opts: CostOptions): ModelCost {
  const cfg = ckpt.config;
  const L = cfg.numLayers;
  const layerBytes = new Array<number>(L).fill(0);
  const first = new Set(ckpt.tensorsForRange(0, 1).filter((n) => !LAYER_RE.test(n)));
  const last = new Set(ckpt.tensorsForRange(L - 1, L).filter((n) => !LAYER_RE.test(n)));
  for (const name of ckpt.tensorsForRange(0, L)) {
    const m = LAYER_RE.exec(name);
    if (m === null) continue;
    const i = Number(m[1]);
    if (i < L) layerBytes[i] = (layerBytes[i] as number) + heldBytes(name, ckpt.info(name).shape, opts.quant, false);
  }
  let firstBytes = 0;
  for (const name of first) firstBytes += heldBytes(name, ckpt.info(name).shape, opts.quant, false);
  let lastBytes = 0;
  let headCost = 0;
  for (const name of last) {
    // On the last stage the (possibly tied) embedding matrix is the lm_head: a matmul per token.
    const asHead = name === 'lm_head.weight' || (cfg.tieEmbeddings && /embed_tokens\.weight$/.test(name));
    const b = heldBytes(name, ckpt.info(name).shape, opts.quant, asHead);
    lastBytes += b;
    if (asHead) headCost += b;
  }
  return {
    numLayers: L,
    layerBytes,
    kvBytesPerLayer: kvBytesPerLayer(cfg, opts.kvTokens),
    firstBytes,
    lastBytes,
    headCost,
    stageOverheadBytes: STAGE_OVERHEAD_BYTES,
  };
}
