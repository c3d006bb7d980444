export { openCheckpoint, INDEX_FILE, SINGLE_FILE, type OpenCheckpointOptions } from './checkpoint.ts';
export { parseConfig, type ParseConfigOptions } from './config.ts';
export { readSafetensorsHeader, checkEntry, readFully, SafetensorsWriter, toFloat32, fromFloat32, f32ToF16Bits, f32ToBf16Bits, numel, DTYPE_BYTES, type SafetensorsHeader, type RawTensorEntry, type TensorSpec } from './safetensors.ts';
export { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerTensorNames, lmHeadName, layerTensorShapes, tensorShapesForRange, allTensorShapes, type LayerTensorNames } from './tensor-names.ts';
export { FAMILIES, DTYPES, type Family, type DType, type RopeScaling, type ModelConfig, type TensorInfo, type Checkpoint } from './types.ts';
export { generateCheckpoint, checkpointPlan, defaultShardCount, resolveShape, shapeToConfig, configJson, qwen3TokenizerFiles, PRESETS, type GenerateOptions, type GenDType, type ModelShape, type PresetName } from './generate-checkpoint.ts';
export { referenceLogits, referenceGreedy, ReferenceModel, ropeInvFreq, argmax, type ReferenceCache } from './reference.ts';
export { QUANTS, type Quant, type ShardBuildSpec } from './shard-build-spec.ts';
export { INT4_BLOCK_SIZES, defaultInt4BlockSize, int4Blocks, int4MatrixBytes } from './quant-int4.ts';
