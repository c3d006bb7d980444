export type { Tokenizer, IncrementalDecoder, ChatMessage, ChatTemplate, ToolDef } from './types.ts';
export { fitTokenizerToVocab, type FittedTokenizer } from './fit-vocab.ts';
export { loadTokenizer, readTokenizerFiles, tokenizerFromFiles, type TokenizerFiles } from './load.ts';
export { byteLevelBytes, bytesToByteLevel } from './byte-level.ts';
export type { DecoderOptions } from './incremental-decoder.ts';
