// Messages between a ShardEngine (main thread) and its onnxruntime worker thread.
// Typed arrays travel in transfer lists: hidden states in, logits/hidden out, never copied.

import type { ErrorCode } from '../errors/index.ts';
import type { StageItem, StageResult, StageSpec } from './types.ts';
import type { ShardInfo, ShardSessionOptions } from './shard-session.ts';

export interface ThreadInit {
  readonly dir: string;
  readonly spec: StageSpec;
  readonly opts: ShardSessionOptions;
}

export type ToThread =
  | { readonly op: 'run'; readonly id: number; readonly items: readonly StageItem[] }
  | { readonly op: 'free'; readonly seq: string }
  | { readonly op: 'profile'; readonly id: number }
  | { readonly op: 'close'; readonly id: number };

export interface WireError {
  readonly code: ErrorCode | null;
  readonly message: string;
}

export type FromThread =
  | { readonly op: 'ready'; readonly info: ShardInfo }
  | { readonly op: 'init-error'; readonly error: WireError }
  | { readonly op: 'result'; readonly id: number; readonly results: readonly StageResult[] }
  | { readonly op: 'profile'; readonly id: number; readonly file: string | null }
  | { readonly op: 'closed'; readonly id: number }
  | {
      readonly op: 'error';
      readonly id: number;
      readonly error: WireError;
      /** Authoritative KV lengths of the sequences the failed call touched. */
      readonly lens: readonly (readonly [string, number])[];
    };

/** The distinct ArrayBuffers under some typed arrays (a transfer list may not repeat one). */
export function buffersOf(arrays: readonly (ArrayBufferView | undefined)[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) if (a && a.buffer instanceof ArrayBuffer && a.buffer.byteLength > 0) out.add(a.buffer);
  return [...out];
}
