// Turns a checkpoint's tensor table into the planner's ModelCost: the bytes a stage holds as the
// engine builds them (src/model/onnx/build-shard.ts), the KV its working set needs, and the
// runtime's own overhead, measured (issue 20: the old count reserved KV for 32k tokens, counted
// the embedding as fp32 and int4 at 0.625 B/weight, and refused an 8B that fits).
//
// As built, int4 (quant 'int4'):
// - every projection is a MatMulNBits weight: per row, ceil(K/block) blocks of block/2 packed
//   bytes + one fp32 scale (zero point implicit; with HEARTH_INT4_ZERO_POINTS=1 half a byte more a
//   block, except a MoE layer's experts, which moe.ts keeps symmetric); q|k|v and gate|up are
//   fused, biases stay fp32;
// - the first stage's embedding is an int4 GatherBlockQuantized table (when hidden % block == 0),
//   mapped and paged in by the rows looked up: as built it is counted whole (stageWeightBytes), but
//   against a node's offer only one page per token of the KV reserve (firstMappedBytes is the
//   rest): the pages are clean file pages the kernel drops under pressure, so a node never runs out
//   of memory over them (issue 20: counted whole, a tied 3B's 209 MB table on stage 0 beside the
//   209 MB head on the last stage kept 2 nodes × 60% of the model from serving it);
// - the lm_head is int4 in row slices; a tied head on a stage that also holds the embedding reads
//   the lookup table's bytes (counted once), on a later stage it is quantized from the checkpoint;
// - norms are held as fp32; the two rotary tables [positions, headDim/2] are fed by the session and
//   sized to the positions the stage's KV allowance holds (src/runtime/rope-rows.ts), so the plan
//   counts them for the KV reserve's tokens and the engine carves the rest out of the allowance.
// onnxruntime prepacks each MatMulNBits weight for its int8 kernels (accuracy_level 4), adding one
// fp32 block sum per block: 4 bytes per block, held in memory but not streamed per token.
// 'none' keeps projections and the head as fp32 (4 bytes), the embedding as stored (mapped).
//
// Measured (0.5B shape, Qwen2.5-0.5B config, int4 block 128, 1 thread, loaded from the shard
// cache, RSS from /proc/self/status before ShardSession.create and after a 64-token prompt + 16
// decode steps; node 20, onnxruntime-node 1.30): the whole model as one stage, engine weightBytes
// 271.1 MB, this file 271.1 MB (+ 15.0 MB block sums), resident delta 373.5 MB; layers 12-24 (+ head)
// 175.9 MB built, delta 252.0 MB; layers 0-12 (+ embedding) 103.6 MB + 72.3 MB table, delta
// 162.0 MB. The rest, 50-87 MB a stage, is onnxruntime's session and arena, plus its own code: a
// session over a 2-layer model of 123 KB adds 30 MB to the process (RSS 108 -> 138 MB), 20 MB of it
// RssFile, the library's code paged in by the first session (clean, shared with every process that
// maps libonnxruntime, the same for any model). That code is the process's, like node's: the
// process itself (node + onnxruntime, its code paged in) is ~116 MB that no offer covers, and
// STAGE_OVERHEAD_BYTES is the rest, 87 - 20 = 67 MB at most (issue 20: counted in each stage, the
// 20 MB kept a 3B model off 2 devices x 60% of its int4 weights by 0.6 MB).

import { defaultInt4BlockSize, defaultVocabBits, int4Blocks, int4MatrixBytes, int8MatrixBytes, raggedBits } from '../model/index.ts';
import { EMBED_TOKENS, LM_HEAD } from '../model/index.ts';
import { ropePositions } from '../model/onnx/index.ts';
import type { Checkpoint, ModelConfig } from '../model/types.ts';
import type { Quant } from '../runtime/types.ts';
import type { ModelCost } from './planner.ts';
import { layerReadBytes } from './moe-costs.ts';
import { carriedMatrixBytes, carriesBlocks } from '../model/carried-blocks.ts';
import { defaultInt4ZeroPoints } from '../model/quant-int4.ts';
import { isMoeLayer } from '../model/tensor-names.ts';

/** onnxruntime's session and its arena after a step, per stage (measured at most 67 MB on the
 *  0.5B shape once the library's code, paged in by any session, is left to the process; see above). */
export const STAGE_OVERHEAD_BYTES = 64 * 1024 * 1024;
/** KV tokens each stage reserves at plan time when nothing says otherwise: one sequence of 512
 *  positions, or several shorter ones. It is a floor, not a ceiling: KV grows on demand within the
 *  node's offer (the planner leaves every byte it does not assign to weights for it), and a step
 *  that would pass the offer fails with HEARTH_ERR_KV_FULL. 512 rather than 1024: a 3B model's
 *  fp32 KV is 229 KB a token, and 1024 reserved tokens (235 MB) alone kept 2 devices × 60% of
 *  its int4 weights from serving it (issue 20). */
export const KV_RESERVE_TOKENS = 256;

export interface CostOptions {
  readonly quant: Quant;
  /** KV tokens each stage reserves at plan time (all its sequences together); see kvReserveTokens. */
  readonly kvTokens: number;
  /** int4 block size along K (default: the engine's, HEARTH_INT4_BLOCK or 128). */
  readonly int4Block?: number;
  /** int4 models: bits of the embedding table and lm_head (default: the engine's, HEARTH_VOCAB_BITS or 4). */
  readonly vocabBits?: 4 | 8;
  /** int4 with uint4 zero points per block (default: the engine's, HEARTH_INT4_ZERO_POINTS). */
  readonly int4ZeroPoints?: boolean;
  /** Bytes per KV element: 4 (float32, default) or 2 (HEARTH_KV_DTYPE=float16). */
  readonly kvElementBytes?: number;
  /** Context served: the rotary table rows every stage builds (ropePositions; default the model's
   *  max_position_embeddings, as a worker given no context builds). */
  readonly maxPositions?: number;
}

/** The KV working set to plan for: the reserve, never more than one full context. */
export function kvReserveTokens(contextLength: number): number {
  return Math.max(1, Math.min(contextLength, KV_RESERVE_TOKENS));
}

const LAYER_RE = /\.layers\.(\d+)\./;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function kvBytesPerLayer(config: ModelConfig, kvTokens: number, elementBytes = 4): number {
  return 2 * config.numKvHeads * config.headDim * elementBytes * kvTokens;
}

/** Bytes of one tensor as the engine holds it, and the prepacked block sums on top (int4 only). */
function held(ckpt: Checkpoint, name: string, quant: Quant, block: number, zeroPoints = false): { bytes: number; prepack: number } {
  const info = ckpt.info(name);
  const shape = info.shape;
  const matrix = shape.length === 2 && /proj\.weight$|\.experts\.\d+\.w[123]\.weight$/.test(name); // mixtral experts: w1/w3/w2
  if (quant === 'int4' && matrix && carriesBlocks(ckpt)) {
    // A GGUF's blocks as the file holds them (model/carried-blocks.ts), fp32 where it holds F16/F32.
    const [rows, cols] = shape as [number, number];
    const f = ckpt.carriedFormat(name);
    return { bytes: carriedMatrixBytes(rows, cols, f), prepack: f === null ? 0 : rows * int4Blocks(cols, f.block) * 4 };
  }
  if (quant === 'int4' && matrix) {
    const [rows, cols] = shape as [number, number];
    const bytes = raggedBits(cols) === 8 ? int8MatrixBytes(rows, cols, block) : int4MatrixBytes(rows, cols, block, zeroPoints);
    return { bytes, prepack: rows * int4Blocks(cols, block) * 4 };
  }
  return { bytes: numel(shape) * 4, prepack: 0 };
}

function storedBytes(ckpt: Checkpoint, name: string): number {
  const info = ckpt.info(name);
  return numel(info.shape) * (info.dtype === 'F32' ? 4 : 2);
}

export function modelCostsFromCheckpoint(ckpt: Checkpoint, opts: CostOptions): ModelCost {
  const cfg = ckpt.config;
  const L = cfg.numLayers;
  const block = opts.int4Block ?? defaultInt4BlockSize();
  const int4 = opts.quant === 'int4';
  const zp = int4 && (opts.int4ZeroPoints ?? defaultInt4ZeroPoints());
  /** Whether the builder gives this layer tensor zero points: attention everywhere, the MLP outside MoE layers (moe.ts is symmetric). */
  const zpOf = (name: string, layer: number): boolean => zp && (/\.self_attn\./.test(name) || !isMoeLayer(cfg, layer));
  const heldAt = (name: string): { bytes: number; prepack: number } => {
    const m = LAYER_RE.exec(name);
    return held(ckpt, name, opts.quant, block, m !== null && zpOf(name, Number(m[1])));
  };
  const layerBytes = new Array<number>(L).fill(0);
  const layerPrepackBytes = new Array<number>(L).fill(0);
  for (const name of ckpt.tensorsForRange(0, L)) {
    const m = LAYER_RE.exec(name);
    if (m === null) continue;
    const i = Number(m[1]);
    if (i >= L) continue;
    const h = heldAt(name);
    layerBytes[i] = (layerBytes[i] as number) + h.bytes;
    layerPrepackBytes[i] = (layerPrepackBytes[i] as number) + h.prepack;
  }
  const H = cfg.hiddenSize;
  const V = cfg.vocabSize;
  // First stage: the lookup table (int4 when the graph quantizes it, else mapped as stored).
  // A GGUF's carried blocks: the table is the file's own when it has no offsets, else gathered
  // from the decoded fp32 (build-shard.ts); the head is the head tensor's carried format.
  const carried = int4 && carriesBlocks(ckpt) ? ckpt : null;
  const embedFormat = carried?.carriedFormat(EMBED_TOKENS) ?? null;
  const embedInt4 = carried !== null ? embedFormat !== null && !embedFormat.offsets : int4 && H % block === 0;
  const vocabBytes = carried !== null ? carriedMatrixBytes(V, H, embedFormat) : (opts.vocabBits ?? defaultVocabBits()) === 8 ? int8MatrixBytes(V, H, block) : int4MatrixBytes(V, H, block, zp);
  const firstBytes = embedInt4 ? vocabBytes : storedBytes(ckpt, EMBED_TOKENS);
  // Last stage: final norm + the head.
  const headFormat = carried?.carriedFormat(ckpt.has(LM_HEAD) ? LM_HEAD : EMBED_TOKENS) ?? null;
  const headBytes = carried !== null ? carriedMatrixBytes(V, H, headFormat) : int4 ? vocabBytes : V * H * 4;
  const lastPrepackBytes = carried !== null ? (headFormat === null ? 0 : V * int4Blocks(H, headFormat.block) * 4) : int4 ? V * int4Blocks(H, block) * 4 : 0;
  const lastBytes = headBytes + H * 4;
  // An untied fp32 head over an fp32 checkpoint is read in place: the same 4 bytes a weight.
  void LM_HEAD;
  // One stage holding both: a tied int4 head is a view of the lookup table (build-shard.ts); a
  // tied fp32 head over an fp32 checkpoint reads the same mapped bytes.
  // Pages of the mapped table the working set touches: one per token of the KV reserve.
  const firstMappedBytes = embedInt4 ? Math.max(0, firstBytes - opts.kvTokens * 4096) : 0;
  let firstLastSharedBytes = 0;
  if (cfg.tieEmbeddings && embedInt4) firstLastSharedBytes = headBytes;
  else if (cfg.tieEmbeddings && !int4 && ckpt.info(EMBED_TOKENS).dtype === 'F32') firstLastSharedBytes = firstBytes;
  const positions = Math.min(ropePositions(cfg, opts.maxPositions), opts.kvTokens);
  const ropeBytes = 2 * positions * (cfg.headDim / 2) * 4;
  return {
    numLayers: L,
    layerBytes,
    layerPrepackBytes,
    layerReadBytes: layerReadBytes(ckpt, layerBytes, (name) => heldAt(name).bytes),
    kvBytesPerLayer: kvBytesPerLayer(cfg, opts.kvTokens, opts.kvElementBytes ?? 4),
    firstBytes,
    firstMappedBytes,
    lastBytes,
    lastPrepackBytes,
    firstLastSharedBytes,
    headCost: headBytes,
    stageOverheadBytes: STAGE_OVERHEAD_BYTES + ropeBytes,
  };
}

/** Bytes of weights a stage holds as built (no block sums, KV or overhead): what the engine
 *  reports as weightBytes + lookupBytes, less its rotary tables. */
export function stageWeightBytes(cost: ModelCost, start: number, end: number): number {
  let b = 0;
  for (let i = start; i < end; i++) b += cost.layerBytes[i] ?? 0;
  if (start === 0) b += cost.firstBytes;
  if (end === cost.numLayers) b += cost.lastBytes;
  if (start === 0 && end === cost.numLayers) b -= cost.firstLastSharedBytes ?? 0;
  return b;
}
