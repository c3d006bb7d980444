export { Scheduler, createScheduler, DEFAULT_SCHEDULER_OPTIONS, type SchedulerOptions } from './scheduler.ts';
export { LocalPipeline } from './local-pipeline.ts';
export { PrefixCache } from './prefix-cache.ts';
export type * from './types.ts';
