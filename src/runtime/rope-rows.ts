// How many positions a stage's rotary tables cover: the context the gateway serves, but never more
// than the stage's memory can hold a sequence of. KV grows on demand within the stage's allowance
// (the plan's kvBytes, or an offer less its weights), so one sequence can never reach a position
// past allowance ÷ (KV bytes a position + table bytes a position): rows beyond that would be paid
// for and never read. Issue 20: at the served 32,768 rows the tables took 16.8 MB a stage at
// head_dim 128, and a 3B model on 2 devices × 60% of its int4 weights came up 18 MB short.

import type { ModelConfig } from '../model/types.ts';
import { ropePositions } from '../model/onnx/index.ts';

/** Bytes of the cos and sin tables per position (each headDim/2 fp32 values). */
export function ropeBytesPerPosition(cfg: ModelConfig): number {
  return 2 * (cfg.headDim / 2) * 4;
}

/** KV bytes one position of one sequence takes on a stage of `layers` layers. */
export function kvBytesPerPosition(cfg: ModelConfig, layers: number, elementBytes: number): number {
  return layers * 2 * cfg.numKvHeads * cfg.headDim * elementBytes;
}

/**
 * Rows for the tables: the context served (ropePositions), cut to the positions `budgetBytes` of
 * KV and tables together can hold (no cut when the budget is unbounded). At least 1.
 */
export function ropeRows(cfg: ModelConfig, contextLength: number | undefined, budgetBytes: number | null, layers: number, kvElementBytes: number): number {
  const served = ropePositions(cfg, contextLength);
  if (budgetBytes === null) return served;
  const fit = Math.floor(Math.max(0, budgetBytes) / (kvBytesPerPosition(cfg, layers, kvElementBytes) + ropeBytesPerPosition(cfg)));
  return Math.max(1, Math.min(served, fit));
}
