// Make before break, the streams' side (issue 22): when the next plan has loaded and takes steps
// on its own epoch while the old plan still serves (Pipeline.onWarm), every decoding stream's
// context is replayed into the next plan's KV under a new sequence id — the same exact replay a
// lost stage forces, in the same chunks — while the old plan keeps decoding it. Rounds catch up
// the tokens decoded meanwhile until only a few are left; then the switch comes, and the stream
// moves at a token boundary: it feeds the new plan only the tokens decoded since the last round,
// instead of its whole context. Any failure leaves the stream to today's replay.

import type { SamplingParams } from '../sampling/types.ts';
import type { Pipeline, StepRequest } from './types.ts';

/** Positions per exact chunk of a replay (an exact chunk copies the past once per chunk). */
export const EXACT_REPLAY_CHUNK = 32;
/** Catch-up rounds at most before the switch may come. */
const WARM_ROUNDS = 6;
/** Stop the rounds once this few tokens are left for the stream to feed at the switch. */
const WARM_SLACK = 2;

/**
 * Where the chunk that starts at pos ends: the prompt in prefill chunks on the same boundaries
 * every time it is fed; generated tokens (fed again only by a replay or a warm-up) in exact
 * chunks, which give the bits their one-token decode steps gave, so the stream goes on exactly
 * where it was.
 */
export function chunkEnd(pos: number, total: number, promptLen: number, prefillChunk: number): number {
  return pos >= promptLen ? Math.min(total, pos + EXACT_REPLAY_CHUNK) : Math.min(promptLen, pos + prefillChunk);
}

/** One stream the scheduler is running, as the warm-up sees it. */
export interface Mover {
  readonly id: string;
  readonly sampling: SamplingParams;
  /** Its tokens so far (a copy) and how many of them the next plan may take now: all but the
   *  last (the stream feeds that one itself); null while it has generated nothing (still in its
   *  prompt, whose chunk boundaries a warm-up cut short would change). */
  snapshot(): { tokens: Int32Array; len: number; promptLen: number } | null;
  /** The stream ended (its generator returned). */
  done: boolean;
  /** A warm-up of it is under way. */
  warming: boolean;
  /** A finished warm-up: the sequence on the next plan and the positions its KV holds there. */
  warm: { readonly seq: string; readonly epoch: number; readonly len: number } | null;
}

export class WarmMoves {
  private readonly movers = new Set<Mover>();
  /** Streams warmed, and positions fed to warm them, since start (tests, benchmarks). */
  readonly counts = { warmed: 0, positions: 0 };

  constructor(
    private readonly pipeline: Pipeline,
    private readonly prefillChunk: number,
    private readonly window: number,
    private readonly newSeqId: (id: string) => string,
  ) {}

  track(m: Mover): void {
    this.movers.add(m);
  }

  /** The stream ended: a warm-up it leaves behind is freed (now, or when its steps are back). */
  untrack(m: Mover): void {
    m.done = true;
    this.movers.delete(m);
    if (!m.warming) this.drop(m);
  }

  /** Frees m's warm-up sequence, if any. */
  drop(m: Mover): void {
    if (m.warm !== null) this.pipeline.free(m.warm.seq);
    m.warm = null;
  }

  /** Warms the plan of `epoch` with every stream running; resolves when all are done. */
  async warm(epoch: number): Promise<void> {
    await Promise.all([...this.movers].map((m) => this.warmOne(m, epoch)));
  }

  private async warmOne(m: Mover, epoch: number): Promise<void> {
    if (m.warming || m.done) return;
    this.drop(m);
    const seq = this.newSeqId(m.id);
    m.warming = true;
    let len = 0;
    let ok = false;
    try {
      for (let round = 0; round < WARM_ROUNDS && !m.done; round++) {
        const snap = m.snapshot();
        if (snap === null || snap.len <= len) break;
        if (len > 0 && snap.len - len <= WARM_SLACK) break;
        await this.feed(seq, snap.tokens, len, snap.len, snap.promptLen, m.sampling, epoch);
        this.counts.positions += snap.len - len;
        len = snap.len;
      }
      ok = len > 0;
    } catch {
      ok = false;
    } finally {
      m.warming = false;
    }
    // Switched before this was done (the coordinator's wait ran out): the stream has replayed.
    if (!ok || m.done || this.pipeline.epoch() === epoch) { this.pipeline.free(seq); return; }
    m.warm = { seq, epoch, len };
    this.counts.warmed++;
  }

  /** tokens[from, to) into seq's KV on the plan of epoch; nothing sampled. */
  private async feed(seq: string, tokens: Int32Array, from: number, to: number, promptLen: number, sampling: SamplingParams, epoch: number): Promise<void> {
    const inFlight: Promise<void>[] = [];
    let failed: { e: unknown } | null = null;
    for (let pos = from; pos < to;) {
      const end = chunkEnd(pos, to, promptLen, this.prefillChunk);
      const step: StepRequest = {
        seq, pos, tokens: tokens.slice(pos, end), promptLen, sampling, wantToken: false, wantLogits: false, epoch,
        ...(pos >= promptLen && end - pos > 1 ? { exact: true } : {}),
      };
      inFlight.push(this.pipeline.step(step).then(() => undefined, (e: unknown) => { failed ??= { e }; }));
      if (inFlight.length >= this.window) await inFlight[inFlight.length - this.window];
      if (failed !== null) break;
      pos = end;
    }
    await Promise.all(inFlight);
    if (failed !== null) throw (failed as { e: unknown }).e;
  }
}
