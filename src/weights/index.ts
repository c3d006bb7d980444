export { WeightsGrants, type WeightsGrant } from './weights-grants.ts';
export { weightsRoutes, WEIGHTS_PREFIX, type WeightsRoutesOptions } from './weights-routes.ts';
export { ensureStageWeights, STAGE_WEIGHTS_FILE, type EnsureStageWeightsOptions } from './fetch-stage-weights.ts';
export { MANIFEST_VERSION, type ManifestFile, type ManifestTensor, type WeightsManifest } from './manifest-types.ts';
export { readSafetensorsHeader, type SafetensorsEntry, type SafetensorsHeader } from './safetensors-header.ts';
export { layoutSafetensors, type SafetensorsLayout, type TensorLayoutInput } from './safetensors-writer.ts';
export { stageTensorNames, layerOf } from './stage-tensors.ts';
export { stageDir, STAGE_MARKER, type StageMarker } from './stage-cache.ts';
