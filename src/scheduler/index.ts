export { Scheduler, createScheduler, perRequestSlots, DEFAULT_SCHEDULER_OPTIONS, type SchedulerOptions } from './scheduler.ts';
export { Admission, type AdmissionOptions, type Slot } from './admission.ts';
export { LocalPipeline } from './local-pipeline.ts';
export { PrefixCache } from './prefix-cache.ts';
export type * from './types.ts';
export { Speculator, DEFAULT_SPECULATE_OPTIONS, emptySpeculationStats, type SpeculateOptions, type SpeculationStats, type Draft, type DraftSource } from './speculate.ts';
export { lookupDraft } from './draft-lookup.ts';
