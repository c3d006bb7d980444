export { Scheduler, createScheduler, perRequestSlots, DEFAULT_SCHEDULER_OPTIONS, type SchedulerOptions } from './scheduler.ts';
export { Admission, type AdmissionOptions, type Slot } from './admission.ts';
export { LocalPipeline } from './local-pipeline.ts';
export { PrefixCache } from './prefix-cache.ts';
export type * from './types.ts';
