// One sampling step: processors (penalties.ts), then temperature → top-k → top-p → min-p (the order
// of HF's warpers), then one draw from uniformAt(seed, pos).
//
// Logprobs are the log-softmax of the logits after bias and penalties but BEFORE temperature and
// truncation. vLLM's default ("raw_logprobs") is also taken before temperature and top-k/top-p/min-p;
// we additionally include bias and penalties, so a banned token (bias −100) reports as improbable.
// They stay comparable across temperatures, a drawn token always has a finite value, and
// temperature 0 needs no special case.
import { HearthError } from '../errors/index.ts';
import type { SampledToken, SamplingParams, TokenLogprob } from './types.ts';
import { applyLogitBias, applyPresenceFrequency, applyRepetitionPenalty } from './penalties.ts';
import { uniformAt } from './prng.ts';
import { argmax, selectTop } from './top-select.ts';

export interface SampleContext {
  /** Every token of the sequence so far: prompt, then generated. */
  readonly history: Int32Array | readonly number[];
  /** history[promptLen…] are the generated tokens (presence/frequency penalties count those). */
  readonly promptLen: number;
  /** Position of the token being sampled; with the seed it fixes the random draw. */
  readonly pos: number;
  /** Optional mask (constrained decoding): tokens whose entry is 0 cannot be drawn. */
  readonly allowed?: Uint8Array;
}

// Reused buffers: sampling is synchronous, so one scratch per thread is safe and saves a 600 KB
// allocation per token at Qwen's vocabulary size.
let work = new Float32Array(0);
let weights = new Float64Array(0);

function processed(logits: Float32Array, p: SamplingParams, ctx: SampleContext): Float32Array {
  const n = logits.length;
  if (work.length < n) work = new Float32Array(n);
  const w = work.subarray(0, n);
  const allowed = ctx.allowed;
  for (let i = 0; i < n; i++) {
    const v = logits[i]!;
    // NaN would poison every comparison and sum; treat it as a banned token.
    w[i] = v !== v || (allowed !== undefined && allowed[i] === 0) ? -Infinity : v;
  }
  if (p.logitBias !== null) applyLogitBias(w, p.logitBias);
  if (p.repetitionPenalty !== 1) applyRepetitionPenalty(w, ctx.history, p.repetitionPenalty);
  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) applyPresenceFrequency(w, ctx.history, ctx.promptLen, p.presencePenalty, p.frequencyPenalty);
  return w;
}

/** Index j < count drawn with probability wts[j] / total; u in [0,1). */
function drawFrom(wts: Float64Array, count: number, total: number, u: number): number {
  const target = u * total;
  let acc = 0;
  for (let j = 0; j < count; j++) {
    acc += wts[j]!;
    if (acc > target) return j;
  }
  // Rounding can leave target ≥ acc by an ulp: take the last entry with weight.
  for (let j = count - 1; j >= 0; j--) if (wts[j]! > 0) return j;
  return 0;
}

// top-p without top-k: tokens are binned by their distance below the top logit (in temperature
// units), mass per bin summed, and only the bin where the cumulative mass crosses topP is sorted.
// That is O(V) plus a small sort, where a sorted prefix would be O(V log V) on a flat distribution.
const BINS = 2048;
const BIN_RANGE = 32; // e^-32 ≈ 1e-14: everything farther shares the last bin
const binMass = new Float64Array(BINS);
let ids = new Int32Array(0);

const binOf = (d: number): number => (d >= BIN_RANGE ? BINS - 1 : Math.floor((d * BINS) / BIN_RANGE));

/** The kept candidates: ids[j] (identity when null) with weight weights[j], j < count. */
interface Warped { readonly ids: Int32Array | null; readonly count: number; readonly total: number }

function warp(w: Float32Array, p: SamplingParams): Warped {
  const n = w.length;
  if (weights.length < n) { weights = new Float64Array(n); ids = new Int32Array(n); }
  const invT = 1 / p.temperature;
  const max = w[argmax(w)]!;
  const minP = p.minP > 0 ? p.minP : 0; // weights are relative to the top token (weight exactly 1)
  const topK = p.topK > 0 && p.topK < n ? p.topK : 0;

  if (topK > 0) {
    const sel = selectTop(w, topK);
    let z = 0;
    for (let j = 0; j < sel.length; j++) { const e = Math.exp((w[sel[j]!]! - max) * invT); weights[j] = e; z += e; }
    const need = p.topP < 1 ? p.topP * z : Infinity;
    let count = 0;
    let total = 0;
    // sel is sorted best first: top-p keeps the shortest prefix reaching `need`, min-p a prefix too.
    while (count < sel.length && (count === 0 || (total < need && weights[count]! >= minP))) total += weights[count++]!;
    return { ids: sel, count, total };
  }

  let z = 0;
  for (let i = 0; i < n; i++) { const e = Math.exp((w[i]! - max) * invT); weights[i] = e; z += e; }
  if (p.topP >= 1) {
    if (minP === 0) return { ids: null, count: n, total: z };
    // min-p alone: compact the survivors in place (count ≤ i, so nothing unread is overwritten).
    let count = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const e = weights[i]!;
      if (e >= minP) { ids[count] = i; weights[count++] = e; total += e; }
    }
    return { ids, count, total };
  }

  const need = p.topP * z;
  binMass.fill(0);
  for (let i = 0; i < n; i++) { const e = weights[i]!; if (e > 0) binMass[binOf((max - w[i]!) * invT)]! += e; }
  let edge = BINS - 1;
  let acc = 0;
  for (let b = 0; b < BINS; b++) {
    if (acc + binMass[b]! >= need) { edge = b; break; }
    acc += binMass[b]!;
  }
  let count = 0;
  let total = 0;
  const boundary: number[] = [];
  for (let i = 0; i < n; i++) {
    const e = weights[i]!;
    if (e === 0) continue;
    const b = binOf((max - w[i]!) * invT);
    if (b < edge) { if (e >= minP) { ids[count] = i; weights[count++] = e; total += e; } } else if (b === edge) boundary.push(i);
  }
  // Within the crossing bin, best first (ties → lower id), until the kept mass reaches topP.
  boundary.sort((a, b) => w[b]! - w[a]! || a - b);
  for (const i of boundary) {
    if (count > 0 && acc >= need) break;
    const e = Math.exp((w[i]! - max) * invT);
    acc += e;
    if (count > 0 && e < minP) break;
    ids[count] = i; weights[count++] = e; total += e;
  }
  return { ids, count, total };
}

function sampleWarped(w: Float32Array, p: SamplingParams, u: number): number {
  const { ids: kept, count, total } = warp(w, p);
  const j = drawFrom(weights, count, total, u);
  return kept === null ? j : kept[j]!;
}

function logprobsOf(w: Float32Array, token: number, n: number): { logprob: number; top: TokenLogprob[] } {
  const top = argmax(w);
  const max = w[top]!;
  let z = 0;
  for (let i = 0; i < w.length; i++) z += Math.exp(w[i]! - max);
  const lse = max + Math.log(z);
  const alts: TokenLogprob[] = [];
  if (n > 0) for (const id of selectTop(w, n)) alts.push({ token: id, logprob: w[id]! - lse });
  return { logprob: w[token]! - lse, top: alts };
}

/**
 * Samples the token at ctx.pos from one row of logits. The logits are not modified. Greedy when
 * temperature is 0 or topK is 1 (ties → lowest id). Throws HEARTH_ERR_ENGINE when no token is
 * possible (every logit −∞/NaN, e.g. a constraint that masked everything).
 */
export function sampleToken(logits: Float32Array, p: SamplingParams, ctx: SampleContext): SampledToken {
  const greedy = p.temperature === 0 || p.topK === 1;
  if (greedy && p.topLogprobs < 0 && ctx.allowed === undefined && p.logitBias === null && p.repetitionPenalty === 1 && p.presencePenalty === 0 && p.frequencyPenalty === 0) {
    // Plain greedy: one pass over the logits, no copy (NaN never compares greater, so it is skipped).
    const t = argmax(logits);
    if (t < 0) throw new HearthError('HEARTH_ERR_ENGINE', ['every logit is -inf or NaN: no token can be sampled']);
    return { token: t };
  }
  const w = processed(logits, p, ctx);
  const best = argmax(w);
  if (best < 0) throw new HearthError('HEARTH_ERR_ENGINE', ['every logit is -inf or NaN: no token can be sampled']);
  const token = greedy ? best : sampleWarped(w, p, uniformAt(p.seed, ctx.pos));
  if (p.topLogprobs < 0) return { token };
  const { logprob, top } = logprobsOf(w, token, p.topLogprobs);
  return { token, logprob, top };
}

/**
 * The distribution sampleToken draws from when temperature > 0 (after penalties, temperature and
 * truncation), as id → probability. For tests and diagnostics; allocates.
 */
export function warpedDistribution(logits: Float32Array, p: SamplingParams, ctx: SampleContext): Map<number, number> {
  const w = processed(logits, p, ctx);
  const { ids: kept, count, total } = warp(w, p);
  const out = new Map<number, number>();
  for (let j = 0; j < count; j++) if (weights[j]! > 0) out.set(kept === null ? j : kept[j]!, weights[j]! / total);
  return out;
}
