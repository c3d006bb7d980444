import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

// How a checkpoint turns its per-position hidden states into one embedding. sentence-transformers
// checkpoints say so themselves: modules.json lists a sentence_transformers.models.Pooling module
// whose folder (usually 1_Pooling/) holds config.json with one pooling_mode_* flag set — Qwen3-
// Embedding sets pooling_mode_lasttoken (its tokenizer appends <|endoftext|>, whose state is the
// embedding), BERT-style models pooling_mode_cls_token or _mean_tokens. A checkpoint that says
// nothing is mean-pooled (what sentence-transformers itself falls back to). Every embedding is then
// L2-normalized, so a dot product is the cosine similarity.

export const POOLINGS = ['mean', 'last', 'first'] as const;
export type Pooling = (typeof POOLINGS)[number];

interface StModule {
  readonly type?: unknown;
  readonly path?: unknown;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return null;
  }
}

/** The pooling a checkpoint folder declares (sentence-transformers layout), else mean. */
export function poolingOf(dir: string): Pooling {
  const modules = readJson(path.join(dir, 'modules.json'));
  let poolDir = path.join(dir, '1_Pooling');
  if (Array.isArray(modules)) {
    const m = (modules as StModule[]).find((x) => typeof x?.type === 'string' && x.type.endsWith('.Pooling'));
    if (m !== undefined && typeof m.path === 'string') poolDir = path.join(dir, m.path);
  }
  const file = path.join(poolDir, 'config.json');
  if (!existsSync(file)) return 'mean';
  const cfg = readJson(file) as Record<string, unknown> | null;
  if (cfg === null || typeof cfg !== 'object') return 'mean';
  if (cfg['pooling_mode_lasttoken'] === true) return 'last';
  if (cfg['pooling_mode_cls_token'] === true) return 'first';
  return 'mean';
}

/**
 * One embedding from `n` hidden states [n, h]: pooled as asked, then L2-normalized (sums in
 * float64, so the result does not depend on the order positions were summed in).
 */
export function poolEmbedding(hidden: Float32Array, n: number, pooling: Pooling): Float32Array {
  const h = hidden.length / n;
  const acc = new Float64Array(h);
  if (pooling === 'mean') {
    for (let p = 0; p < n; p++) for (let i = 0; i < h; i++) acc[i]! += hidden[p * h + i]!;
    for (let i = 0; i < h; i++) acc[i]! /= n;
  } else {
    const row = pooling === 'last' ? n - 1 : 0;
    for (let i = 0; i < h; i++) acc[i] = hidden[row * h + i]!;
  }
  let ss = 0;
  for (let i = 0; i < h; i++) ss += acc[i]! * acc[i]!;
  const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  const out = new Float32Array(h);
  for (let i = 0; i < h; i++) out[i] = acc[i]! * inv;
  return out;
}
