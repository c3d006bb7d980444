// Shared harness for the runtime exactness tests: run a checkpoint through chains of shard engines
// (any split) and compare every logit with the reference forward pass.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCheckpoint, openCheckpoint, type PresetName } from '../../src/model/index.ts';
import { referenceLogits } from '../../src/model/reference.ts';
import { createShardEngine, type EngineOptions, type OnnxShardEngine } from '../../src/runtime/index.ts';
import type { Quant, StageItem, StageResult } from '../../src/runtime/types.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const stories260kDir = path.resolve(repoRoot, '../shared/models/stories260k');

interface Tap {
  teardown(fn: () => unknown): void;
}

/** A generated tiny checkpoint in a temp dir removed at teardown. */
export async function tinyCheckpoint(t: Tap, preset: PresetName, dtype?: 'f32' | 'bf16'): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hearth-${preset}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset, tokenizer: false, ...(dtype !== undefined ? { dtype } : {}) });
  return dir;
}

/** Deterministic pseudo-random token ids below `vocab`. */
export function tokenStream(n: number, vocab: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % vocab;
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** Reference logits for each position of `tokens`. */
export function reference(dir: string, tokens: readonly number[]): Float32Array[] {
  const ckpt = openCheckpoint(dir);
  try {
    return referenceLogits(ckpt, tokens);
  } finally {
    ckpt.close();
  }
}

/** Shard engines for a split, created together, closed at teardown. */
export class Chain {
  private constructor(readonly engines: OnnxShardEngine[]) {}

  static async open(t: Tap, dir: string, ranges: readonly (readonly [number, number])[], quant: Quant = 'none', opts: EngineOptions = {}): Promise<Chain> {
    const engines = await Promise.all(ranges.map(([start, end]) => createShardEngine(dir, { start, end, quant, threads: 1, provider: 'cpu' }, opts)));
    const c = new Chain(engines);
    t.teardown(() => c.close());
    return c;
  }

  /** Runs items through every stage in order; returns the last stage's results. */
  async run(items: readonly StageItem[]): Promise<StageResult[]> {
    let cur = items;
    let res: StageResult[] = [];
    for (const e of this.engines) {
      res = await e.run(cur);
      cur = cur.map((it, i) => ({ ...it, hidden: res[i]?.hidden as Float32Array }));
    }
    return res;
  }

  close(): Promise<void[]> {
    return Promise.all(this.engines.map((e) => e.close()));
  }
}

export interface ExactCase {
  /** Sequence A: prompt (prefilled in `chunks`) then one-token steps for the rest. */
  readonly a: readonly number[];
  readonly aPrompt: number;
  /** Sequence B: shorter prompt, decoded in the same batch as A. */
  readonly b: readonly number[];
  readonly bPrompt: number;
  /** Prefill chunk size for A (the caller chunks). */
  readonly chunk: number;
}

/**
 * Prefills A (chunked) and B, then decodes both together one token at a time (teacher-forced with
 * the case's tokens, so a near-tie can't send the two sides down different paths). Returns the max
 * abs difference from the reference over every logit vector produced, and how many were compared.
 */
export async function exactRun(chain: Chain, c: ExactCase, refA: Float32Array[], refB: Float32Array[]): Promise<{ maxDiff: number; compared: number }> {
  let maxDiff = 0;
  let compared = 0;
  const check = (got: Float32Array | undefined, want: Float32Array | undefined): void => {
    maxDiff = Math.max(maxDiff, got && want ? maxAbsDiff(got, want) : Infinity);
    compared++;
  };
  const ids = (xs: readonly number[], from: number, n: number): Int32Array => Int32Array.from(xs.slice(from, from + n));
  for (let pos = 0; pos < c.aPrompt; pos += c.chunk) {
    const n = Math.min(c.chunk, c.aPrompt - pos);
    const [r] = await chain.run([{ seq: 'A', pos, n, tokens: ids(c.a, pos, n) }]);
    check(r?.logits, refA[pos + n - 1]);
  }
  const [rb] = await chain.run([{ seq: 'B', pos: 0, n: c.bPrompt, tokens: ids(c.b, 0, c.bPrompt) }]);
  check(rb?.logits, refB[c.bPrompt - 1]);
  const steps = Math.min(c.a.length - c.aPrompt, c.b.length - c.bPrompt);
  for (let i = 0; i < steps; i++) {
    const pa = c.aPrompt + i;
    const pb = c.bPrompt + i;
    const [ra, rb2] = await chain.run([
      { seq: 'A', pos: pa, n: 1, tokens: ids(c.a, pa, 1) },
      { seq: 'B', pos: pb, n: 1, tokens: ids(c.b, pb, 1) },
    ]);
    check(ra?.logits, refA[pa]);
    check(rb2?.logits, refB[pb]);
  }
  return { maxDiff, compared };
}
