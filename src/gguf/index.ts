export { ggufView, GGUF_MARKER, type GgufMarker, type GgufTableEntry } from './gguf-view.ts';
export { isGgufFolder, openGgufFolder, GGUF_DTYPE_PREFIX, DECODED_DIR } from './gguf-checkpoint.ts';
export { openGguf, ggufSetFiles, type GgufModel, type GgufTensor } from './gguf-file.ts';
export { dequantize } from './dequantize.ts';
export { GGML, ggmlTypeName, ggmlByteSize, type GgmlType } from './ggml-types.ts';
export { resolveOllamaModel } from './ollama-store.ts';
