import { sampleToken } from '../sampling/index.ts';
import type { SampledToken, SamplingParams } from '../sampling/index.ts';
import type { TokenConstraint } from '../scheduler/types.ts';

// A thinking budget enforced while decoding (Anthropic's `thinking.budget_tokens`): once the model
// has spent `budget` tokens inside its `<think>` block, the next tokens are `</think>`, so the
// answer starts. This is what Qwen3's own guidance does to bound thinking ("thinking budget":
// stop the thought and append the closing tag), done as a TokenConstraint because only a constraint
// may choose a token the model did not sample. Outside the block it samples exactly as the worker
// would (sampleToken with the request's parameters) or defers to the request's own constraint.
// Cost: a constrained sequence returns logits to the gateway each step (no chained decode), so
// only requests with a budget pay it.

export interface ThinkingBudgetSpec {
  /** Tokens allowed inside the think block. */
  readonly budget: number;
  /** The token ids of `<think>` and `</think>` (one id each in Qwen3's vocabulary; more elsewhere). */
  readonly open: readonly number[];
  readonly close: readonly number[];
  /** The prompt already opened the block (templates whose generation prompt ends with `<think>`). */
  readonly startInside: boolean;
}

function endsWith(history: readonly number[], seq: readonly number[]): boolean {
  if (seq.length === 0 || history.length < seq.length) return false;
  for (let i = 0; i < seq.length; i++) if (history[history.length - seq.length + i] !== seq[i]) return false;
  return true;
}

export function thinkingBudgetConstraint(spec: ThinkingBudgetSpec, inner?: TokenConstraint): TokenConstraint {
  const history: number[] = [];
  let state: 'before' | 'inside' | 'after' = spec.startInside ? 'inside' : 'before';
  let spent = 0;
  /** Index into spec.close while the closing tag is being forced (-1: not forcing). */
  let forcing = -1;

  const free = (logits: Float32Array, sampling: SamplingParams, pos: number): SampledToken =>
    inner !== undefined ? inner.pick(logits, sampling, pos) : sampleToken(logits, sampling, { history, promptLen: 0, pos });

  return {
    pick(logits, sampling, pos) {
      if (forcing >= 0) return { token: spec.close[forcing]! };
      return free(logits, sampling, pos);
    },
    accept(token) {
      history.push(token);
      inner?.accept(token);
      if (forcing >= 0) {
        forcing++;
        if (forcing >= spec.close.length) {
          forcing = -1;
          state = 'after';
        }
        return;
      }
      if (state === 'before') {
        // Only a block the answer opens first counts (as the reasoning splitter reads it).
        if (endsWith(history, spec.open)) state = 'inside';
        else if (history.length >= spec.open.length) state = 'after';
        return;
      }
      if (state !== 'inside') return;
      if (endsWith(history, spec.close)) {
        state = 'after';
        return;
      }
      spent++;
      if (spent >= spec.budget && spec.close.length > 0) forcing = 0;
    },
    done: () => inner?.done() ?? false,
    // The closing tag is one token in Qwen3's vocabulary: not worth offering as drafts.
    forced: (max) => (forcing >= 0 ? [] : (inner?.forced?.(max) ?? [])),
  };
}
