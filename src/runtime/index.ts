export { createShardEngine, kvFullSequences, OnnxShardEngine, type EngineOptions } from './engine.ts';
export { ShardSession, type ShardSessionOptions, type ShardInfo } from './shard-session.ts';
export { KvStore } from './kv-store.ts';
export { spawnThread } from './spawn-thread.ts';
export { QUANTS, PROVIDERS, type Quant, type Provider, type StageSpec, type StageItem, type StageResult, type ShardEngine } from './types.ts';
export { benchEngine, profileOpTimes, formatBench, loadBenchEngines, type BenchOptions, type BenchResult, type ContextResult, type OpTime } from './bench.ts';
export { benchPromptIds } from './bench-prompt.ts';
export { ShardCache, resolveShardCacheDir, resolveShardCacheMaxBytes, CACHE_DIR_ENV, CACHE_MAX_ENV, DEFAULT_CACHE_MAX_BYTES } from './shard-cache.ts';
export { CUDA_INSTALL_COMMAND, providerProblem } from './provider-check.ts';
