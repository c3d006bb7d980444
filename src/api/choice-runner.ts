import { createStopMatcher } from '../chat/stop-strings.ts';
import { createToolCallParser, type ToolCallEvent, type ToolSyntax } from '../chat/tool-calls/index.ts';
import type { SamplingParams } from '../sampling/types.ts';
import type { Generator as TokenGenerator, TokenConstraint } from '../scheduler/types.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { chatLogprob, type ChatTokenLogprob } from './logprobs.ts';
import { createReasoningSplitter } from './reasoning-splitter.ts';

// One choice of a completion: the generator's tokens → text (incremental detokenizer) → stop strings
// → tool-call parser → events the route turns into a JSON answer or SSE chunks. The streaming and
// non-streaming paths both consume these same events, so for the same seed they give the same text
// and the same tool-call arguments by construction.

export type ChoiceFinish = 'stop' | 'length' | 'tool_calls';

export type ChoiceEvent =
  | { readonly type: 'content'; readonly text: string; readonly logprobs: readonly ChatTokenLogprob[] }
  | { readonly type: 'reasoning'; readonly text: string; readonly logprobs: readonly ChatTokenLogprob[] }
  | { readonly type: 'tool_call_start'; readonly index: number; readonly id: string; readonly name: string; readonly logprobs: readonly ChatTokenLogprob[] }
  | { readonly type: 'tool_call_args'; readonly index: number; readonly fragment: string; readonly logprobs: readonly ChatTokenLogprob[] }
  | { readonly type: 'tool_call_end'; readonly index: number }
  | { readonly type: 'finish'; readonly reason: ChoiceFinish; readonly completionTokens: number; readonly logprobs: readonly ChatTokenLogprob[]; readonly stopString?: string };

export interface ChoiceSpec {
  /** Unique per sequence (request id + choice index): the scheduler's sequence id prefix. */
  readonly id: string;
  /** The API request's id, shared by its n choices: the scheduler's unit of fair slot shares. */
  readonly group: string;
  readonly prompt: Int32Array;
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  readonly stopTokens: readonly number[];
  readonly stops: readonly string[];
  readonly constraint?: TokenConstraint;
  /** Parse tool calls in this syntax; null = all text is content. */
  readonly toolSyntax: ToolSyntax | null;
  readonly toolNames?: readonly string[];
  readonly wantLogprobs: boolean;
  /** The output continues the prompt's text (legacy completions): keep a leading space. */
  readonly continuation: boolean;
  /** Split `<think>` blocks into reasoning events (startInside: the prompt opened one). */
  readonly reasoning?: { readonly startInside: boolean };
}

/** Thrown out of runChoice when the request's signal aborted (client gone): nothing to answer. */
export class ChoiceCancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'ChoiceCancelled';
  }
}

export async function* runChoice(generator: TokenGenerator, tok: Tokenizer, spec: ChoiceSpec, signal: AbortSignal): AsyncGenerator<ChoiceEvent> {
  const decoder = tok.createDecoder({ skipSpecialTokens: true, continuation: spec.continuation });
  const stop = createStopMatcher([...spec.stops]);
  const thinker = spec.reasoning === undefined ? null : createReasoningSplitter(spec.reasoning.startInside);
  const parser = spec.toolSyntax === null ? null : createToolCallParser(spec.toolSyntax, { seed: spec.sampling.seed, ...(spec.toolNames === undefined ? {} : { toolNames: spec.toolNames }) });
  let pending: ChatTokenLogprob[] = [];
  let calls = 0;
  let tokens = 0;
  let reason: 'stop' | 'length' | 'cancelled' | null = null;

  const take = (): ChatTokenLogprob[] => {
    const out = pending;
    pending = [];
    return out;
  };
  function* emit(raw: string): Generator<ChoiceEvent> {
    let text = raw;
    if (thinker !== null && raw !== '') {
      const d = thinker.push(raw);
      if (d.reasoning !== '') yield { type: 'reasoning', text: d.reasoning, logprobs: take() };
      text = d.content;
    }
    yield* answer(text);
  }
  function* answer(text: string): Generator<ChoiceEvent> {
    if (text === '') return;
    if (parser === null) {
      yield { type: 'content', text, logprobs: take() };
      return;
    }
    yield* mapParser(parser.push(text));
  }
  function* mapParser(evs: readonly ToolCallEvent[]): Generator<ChoiceEvent> {
    for (const ev of evs) {
      switch (ev.type) {
        case 'content':
          if (ev.text !== '') yield { type: 'content', text: ev.text, logprobs: take() };
          break;
        case 'tool_call_start':
          calls++;
          yield { type: 'tool_call_start', index: ev.index, id: ev.id, name: ev.name, logprobs: take() };
          break;
        case 'tool_call_args':
          if (ev.fragment !== '') yield { type: 'tool_call_args', index: ev.index, fragment: ev.fragment, logprobs: take() };
          break;
        case 'tool_call_end':
          yield { type: 'tool_call_end', index: ev.index };
          break;
      }
    }
  }

  const stream = generator.generate({
    id: spec.id,
    group: spec.group,
    prompt: spec.prompt,
    maxTokens: spec.maxTokens,
    sampling: spec.sampling,
    stopTokens: spec.stopTokens,
    signal,
    // Stop strings are matched on the text between tokens: the gateway takes part in every step.
    ...(spec.stops.length > 0 ? { stepwise: true } : {}),
    ...(spec.constraint === undefined ? {} : { constraint: spec.constraint }),
  });
  let stoppedByString = false;
  // Which stop string ended the text (Anthropic's stop_sequence names it).
  let stopString: string | null = null;
  try {
    for await (const ev of stream) {
      if (ev.type === 'done') {
        reason = ev.reason;
        break;
      }
      tokens++;
      if (spec.wantLogprobs) {
        const lp = chatLogprob(tok, ev.token);
        if (lp !== null) pending.push(lp);
      }
      const r = stop.push(decoder.push(ev.token.token));
      yield* emit(r.emit);
      if (r.stopped) {
        // Leaving the loop returns the generator: the scheduler frees the sequence's KV everywhere.
        stoppedByString = true;
        stopString = r.stop;
        break;
      }
    }
  } catch (e) {
    // A request whose client left while it waited for a slot: the scheduler rejects with the
    // abort's reason. Nobody is left to answer, and it is not a server error.
    if (signal.aborted) throw new ChoiceCancelled();
    throw e;
  }
  if (signal.aborted || reason === 'cancelled') throw new ChoiceCancelled();
  if (!stoppedByString) {
    const tail = stop.push(decoder.flush());
    stopString = tail.stop;
    yield* emit(tail.emit);
    if (!tail.stopped) yield* emit(stop.flush());
  }
  if (thinker !== null) {
    const d = thinker.flush();
    if (d.reasoning !== '') yield { type: 'reasoning', text: d.reasoning, logprobs: take() };
    yield* answer(d.content);
  }
  if (parser !== null) yield* mapParser(parser.end());
  const finish: ChoiceFinish = stoppedByString || reason !== 'length' ? (calls > 0 ? 'tool_calls' : 'stop') : 'length';
  yield { type: 'finish', reason: finish, completionTokens: tokens, logprobs: take(), ...(stopString === null ? {} : { stopString }) };
}
