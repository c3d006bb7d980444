export { pullModel, DEFAULT_ENDPOINT, type PullOptions, type PullResult } from './pull.ts';
export { listLocalModels, type LocalModel } from './local-models.ts';
export { defaultModelsDir, modelDirFor, checkRepoId, resolveLocalModel, MODELS_DIR_ENV } from './models-dir.ts';
export { createProgressBar, silentProgress, type ProgressSink } from './progress-bar.ts';
export { formatBytes, formatDuration, formatParams } from './format.ts';
export { isCheckpointFile, selectWeightFiles } from './checkpoint-files.ts';
export { PULL_MARKER, type PullMarker } from './pull-marker.ts';
