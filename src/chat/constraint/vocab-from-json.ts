// A ByteVocab straight from a byte-level BPE tokenizer.json (GPT-2 byte map), without loading a
// full tokenizer: enough for constraints, and what the tests use to stay fast.

import { byteLevelBytes } from '../../tokenizer/index.ts';
import type { ByteVocab } from './vocab-index.ts';

interface TokenizerJson {
  readonly model?: { readonly vocab?: Record<string, number> };
  readonly added_tokens?: readonly { readonly id: number; readonly content: string; readonly special?: boolean }[];
}

const utf8 = new TextEncoder();

export function byteVocabFromTokenizerJson(json: unknown, eosTokens: readonly string[]): ByteVocab & { idOf(piece: string): number | undefined } {
  const tj = json as TokenizerJson;
  const table: Uint8Array[] = [];
  const ids = new Map<string, number>();
  for (const [piece, id] of Object.entries(tj.model?.vocab ?? {})) {
    table[id] = byteLevelBytes(piece) ?? utf8.encode(piece);
    ids.set(piece, id);
  }
  const special = new Set<number>();
  for (const a of tj.added_tokens ?? []) {
    table[a.id] = utf8.encode(a.content);
    ids.set(a.content, a.id);
    if (a.special === true) special.add(a.id);
  }
  const empty = new Uint8Array(0);
  return {
    vocabSize: table.length,
    eosTokenIds: eosTokens.map((t) => ids.get(t)).filter((x): x is number => x !== undefined),
    specialIds: special,
    tokenBytes: (id) => table[id] ?? empty,
    idOf: (piece) => ids.get(piece),
  };
}
