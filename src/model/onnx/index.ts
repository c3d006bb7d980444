export { buildShardGraph, chooseAttention, IO, KV_DTYPES, type BuildShardOptions, type KvDtype, type ShardGraph } from './build-shard.ts';
export { ATTENTION_KINDS, ATTN_INPUTS, ROPE_INPUTS, type AttentionKind } from './attention.ts';
export { ropeInvFreq, ropePositions, ropeTables } from './rope.ts';
export type { ExternalFile } from './graph.ts';
export { WeightReader } from './weights.ts';
