export { planStages, tryPlan, explainNoPlan, stageBytes, modelBytes, type ModelCost, type PlanNode, type PlannedStage, type StagePlan } from './planner.ts';
export { modelCostsFromCheckpoint, kvBytesPerLayer, kvReserveTokens, stageWeightBytes, STAGE_OVERHEAD_BYTES, KV_RESERVE_TOKENS, type CostOptions } from './model-costs.ts';
export { Coordinator, MEMBER_STATES, type MemberState, type CoordinatorOptions, type ClusterSnapshot, type NodeSnapshot, type LivePlan } from './coordinator.ts';
export { createClusterPipeline, hopDelayFromEnv, type ClusterPipeline, type ClusterPipelineOptions } from './cluster-pipeline.ts';
export { startNatsServer, findNatsServerBinary, type NatsServerOptions, type NatsServerHandle } from './nats-server.ts';
export { HopStats, StageStats } from './hop-stats.ts';
export { benchCluster, formatBenchCluster, type BenchClusterOptions, type BenchClusterResult, type BenchClusterRow } from './bench-cluster.ts';
