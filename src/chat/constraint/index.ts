export { createConstraint, grammarFor, DEFAULT_CONSTRAINT_BUDGET } from './constraint.ts';
export type { ConstraintSpec, GrammarConstraint } from './constraint.ts';
export type { ToolCallMode, ToolGrammarSpec } from './tool-grammar.ts';
export { compileSchema } from './schema-compile.ts';
export { vocabIndex } from './vocab-index.ts';
export type { ByteVocab, VocabIndex } from './vocab-index.ts';
export { byteVocabFromTokenizerJson } from './vocab-from-json.ts';
export { linearRegExp } from './linear-regexp.ts';
