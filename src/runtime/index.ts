export { createShardEngine, OnnxShardEngine, type EngineOptions } from './engine.ts';
export { ShardSession, type ShardSessionOptions, type ShardInfo } from './shard-session.ts';
export { KvStore } from './kv-store.ts';
export { spawnThread } from './spawn-thread.ts';
export { QUANTS, PROVIDERS, type Quant, type Provider, type StageSpec, type StageItem, type StageResult, type ShardEngine } from './types.ts';
export { benchEngine, decodeOpTimes, formatBench, type BenchOptions, type BenchResult, type OpTime } from './bench.ts';
