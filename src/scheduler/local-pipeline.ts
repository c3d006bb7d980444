import type { Pipeline, StepOutcome, StepRequest } from './types.ts';
import type { StageRunner } from '../worker/stage-runner.ts';

/**
 * A Pipeline over stages in this process (`hearth generate --split`, `hearth bench`, the in-process
 * fallback of `hearth up`). Each stage's engine runs in its own worker thread, so while stage 1 runs
 * one sequence's step, stage 0 runs another's: the same pipelining the NATS cluster gets.
 */
export class LocalPipeline implements Pipeline {
  private readonly stages: readonly StageRunner[];

  constructor(stages: readonly StageRunner[]) {
    if (stages.length === 0) throw new Error('LocalPipeline needs at least one stage');
    this.stages = stages;
    for (const s of stages) s.setStages(stages.length);
  }

  async step(req: StepRequest): Promise<StepOutcome> {
    let hidden: Float32Array | undefined;
    const last = this.stages.length - 1;
    for (let i = 0; i <= last; i++) {
      const r = await this.stages[i]!.submit({
        item: {
          seq: req.seq,
          pos: req.pos,
          n: req.tokens.length,
          tokens: req.tokens,
          ...(hidden === undefined ? {} : { hidden }),
          ...(req.fork === undefined ? {} : { fork: req.fork }),
          ...(req.exact === true ? { exact: true } : {}),
          // Every stage cuts its KV back (rejected drafts of the previous verify step).
          ...(req.rewind === true ? { rewind: true } : {}),
          // A verify step: the last stage returns a row of logits (a choice) per position asked.
          ...(i === last && req.choices !== undefined && req.choices > 1 ? { logitRows: req.choices } : {}),
          ...(i === last && req.wantHidden === true ? { wantHidden: true } : {}),
        },
        promptLen: req.promptLen,
        sampling: req.sampling,
        wantToken: i === last && req.wantToken,
        wantLogits: i === last && req.wantLogits,
      });
      if (i === last) {
        return {
          token: r.token ?? null,
          ...(r.tokens === undefined ? {} : { tokens: r.tokens }),
          ...(r.logits === undefined ? {} : { logits: r.logits }),
          ...(req.wantHidden === true && r.hidden !== undefined ? { hidden: r.hidden } : {}),
        };
      }
      hidden = r.hidden;
    }
    throw new Error('unreachable');
  }

  free(seq: string): void {
    for (const s of this.stages) s.free(seq);
  }

  async waitReady(): Promise<void> {}

  epoch(): number {
    return 1;
  }

  async close(): Promise<void> {
    for (const s of this.stages) {
      await s.close();
      await s.engine.close();
    }
  }
}
