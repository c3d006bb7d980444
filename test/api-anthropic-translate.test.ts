import t from 'tap';
import { anthropicErrorBody, anthropicMessages, thinkingPlan, translateMessagesRequest } from '../src/api/anthropic-request.ts';
import type { ChoiceEvent } from '../src/api/choice-runner.ts';
import { toHttpError } from '../src/api/http-errors.ts';
import { omitThinking } from '../src/api/messages-route.ts';
import { thinkingBudgetConstraint } from '../src/api/thinking-budget.ts';
import { HearthError } from '../src/errors/index.ts';
import { makeSamplingParams } from '../src/sampling/index.ts';
import type { TokenConstraint } from '../src/scheduler/types.ts';

// The Anthropic Messages translation as Claude Code exercises it (issue 21 item 1), pure: system
// messages inside `messages`, `thinking` onto the template's switch and a budget enforced while
// decoding, and errors in the words Claude Code's fallbacks look for.

t.test('system messages inside messages: a system turn where they stand, or merged up front', async (t) => {
  const body = {
    system: [{ type: 'text' as const, text: 'Top.' }],
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'hi', cache_control: { type: 'ephemeral' } }] },
      { role: 'system', content: [{ type: 'text', text: '# Environment', cache_control: { type: 'ephemeral' } }] },
      { role: 'assistant', content: 'Hello.' },
      { role: 'system', content: 'Later note.' },
      { role: 'user', content: 'go on' },
    ],
  };
  t.same(anthropicMessages(body, { systemInline: true }), [
    { role: 'system', content: 'Top.' },
    { role: 'user', content: 'hi' },
    { role: 'system', content: '# Environment' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'system', content: 'Later note.' },
    { role: 'user', content: 'go on' },
  ]);
  t.same(anthropicMessages(body, { systemInline: false }), [
    { role: 'system', content: 'Top.\n\n# Environment\n\nLater note.' },
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'go on' },
  ]);
  t.same(anthropicMessages({ messages: [{ role: 'user', content: 'x' }, { role: 'system', content: 'S' }] }, { systemInline: false }), [{ role: 'system', content: 'S' }, { role: 'user', content: 'x' }], 'no top-level system: the merged one leads');
  t.same(anthropicMessages({ system: [{ type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.332.0b8; cc_entrypoint=sdk-cli;' }, { type: 'text', text: 'You are an agent.' }], messages: [{ role: 'user', content: 'x' }] })[0], { role: 'system', content: 'You are an agent.' }, "Claude Code's billing header is not rendered");
  t.throws(() => anthropicMessages({ messages: [{ role: 'tool', content: 'x' }] }), /messages\.0\.role: Unexpected role "tool"/);
  t.throws(() => anthropicMessages({ messages: [{ role: 'system', content: [{ type: 'tool_use', id: 'a', name: 'b', input: {} }] }] }), /system messages hold text blocks only/);
});

t.test('thinking: absent/disabled off, adaptive on, enabled with a checked budget', async (t) => {
  const base = { model: 'm', max_tokens: 4096, messages: [{ role: 'user', content: 'x' }] };
  t.same(translateMessagesRequest(base).chat_template_kwargs, { enable_thinking: false }, 'absent: off, as on Anthropic');
  t.same(translateMessagesRequest({ ...base, thinking: { type: 'disabled' } }).chat_template_kwargs, { enable_thinking: false });
  t.same(translateMessagesRequest({ ...base, thinking: { type: 'adaptive', display: 'omitted' } }).chat_template_kwargs, { enable_thinking: true });
  t.same(thinkingPlan({ type: 'adaptive', display: 'omitted' }, 4096), { enabled: true, budget: null, omitText: true });
  t.same(thinkingPlan({ type: 'enabled', budget_tokens: 2048 }, 4096), { enabled: true, budget: 2048, omitText: false });
  t.throws(() => thinkingPlan({ type: 'enabled' }, 4096), /thinking\.enabled\.budget_tokens: Field required/);
  t.throws(() => thinkingPlan({ type: 'enabled', budget_tokens: 100 }, 4096), /greater than or equal to 1024/);
  t.throws(() => thinkingPlan({ type: 'enabled', budget_tokens: 4096 }, 4096), /`max_tokens` must be greater than `thinking\.budget_tokens`/);
  t.throws(() => thinkingPlan({ type: 'sometimes' }, 4096), /Input tag 'sometimes' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'/);
});

t.test("length errors in Anthropic's words (Claude Code parses them to compact or shrink max_tokens)", async (t) => {
  const tooLong = toHttpError(new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [4096, 11613, '']));
  t.same(anthropicErrorBody(tooLong.status, tooLong.body.error.message, tooLong.code), { type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 11613 tokens > 4096 maximum' } });
  const atLeast = toHttpError(new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [4096, 5000, ' or more']));
  t.equal(anthropicErrorBody(atLeast.status, atLeast.body.error.message, atLeast.code).error.message, 'prompt is too long: 5000 tokens > 4096 maximum');
  const room = toHttpError(new HearthError('HEARTH_ERR_MAX_TOKENS_CONTEXT', [32768, 43609, 11609, 32000, 'max_tokens']));
  t.equal(anthropicErrorBody(room.status, room.body.error.message, room.code).error.message, 'input length and `max_tokens` exceed context limit: 11609 + 32000 > 32768, decrease input length or `max_tokens` and try again');
  t.same(anthropicErrorBody(404, 'nope', 'HEARTH_ERR_MODEL_NOT_FOUND'), { type: 'error', error: { type: 'not_found_error', message: 'nope' } }, 'other errors keep their message');
});

/** Logits that always favour `token` (a model that would think forever). */
function favour(token: number, vocab = 16): Float32Array {
  const l = new Float32Array(vocab);
  l[token] = 10;
  return l;
}

function decode(c: TokenConstraint, want: readonly number[], steps: number): number[] {
  const greedy = makeSamplingParams({ temperature: 0 });
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const tok = c.pick(favour(want[i] ?? want.at(-1)!), greedy, i).token;
    c.accept(tok);
    out.push(tok);
  }
  return out;
}

t.test('thinking budget: past budget_tokens inside <think>, </think> is forced', async (t) => {
  const OPEN = 1;
  const CLOSE = 2;
  const THOUGHT = 7;
  const ANSWER = 9;
  // The model opens a block and would think forever: after 3 thought tokens it must close.
  t.same(decode(thinkingBudgetConstraint({ budget: 3, open: [OPEN], close: [CLOSE], startInside: false }), [OPEN, THOUGHT], 7), [OPEN, THOUGHT, THOUGHT, THOUGHT, CLOSE, THOUGHT, THOUGHT], 'closed once, then free');
  // A prompt that opened the block: the budget counts from the first token.
  t.same(decode(thinkingBudgetConstraint({ budget: 2, open: [OPEN], close: [CLOSE], startInside: true }), [THOUGHT], 4), [THOUGHT, THOUGHT, CLOSE, THOUGHT]);
  // A multi-token closing tag is forced whole.
  t.same(decode(thinkingBudgetConstraint({ budget: 1, open: [OPEN], close: [3, 4, 5], startInside: true }), [THOUGHT], 5), [THOUGHT, 3, 4, 5, THOUGHT]);
  // A model that closes within budget, or never opens a block, is left alone.
  t.same(decode(thinkingBudgetConstraint({ budget: 3, open: [OPEN], close: [CLOSE], startInside: false }), [OPEN, THOUGHT, CLOSE, ANSWER], 6), [OPEN, THOUGHT, CLOSE, ANSWER, ANSWER, ANSWER]);
  t.same(decode(thinkingBudgetConstraint({ budget: 1, open: [OPEN], close: [CLOSE], startInside: false }), [ANSWER], 4), [ANSWER, ANSWER, ANSWER, ANSWER]);
  // The request's own constraint still picks outside the forced tag, and sees every token.
  const seen: number[] = [];
  const inner: TokenConstraint = { pick: () => ({ token: THOUGHT }), accept: (tok) => void seen.push(tok), done: () => seen.length >= 4 };
  const c = thinkingBudgetConstraint({ budget: 2, open: [OPEN], close: [CLOSE], startInside: true }, inner);
  t.same(decode(c, [ANSWER], 4), [THOUGHT, THOUGHT, CLOSE, THOUGHT]);
  t.same(seen, [THOUGHT, THOUGHT, CLOSE, THOUGHT]);
  t.equal(c.done(), true, 'done is the inner constraint’s');
});

t.test('thinking display omitted: each thinking block still opens, with no text', async (t) => {
  async function* events(): AsyncGenerator<ChoiceEvent> {
    yield { type: 'reasoning', text: 'secret ', logprobs: [] };
    yield { type: 'reasoning', text: 'plan', logprobs: [] };
    yield { type: 'content', text: 'Hi', logprobs: [] };
    yield { type: 'reasoning', text: 'again', logprobs: [] };
    yield { type: 'finish', reason: 'stop', completionTokens: 4, logprobs: [] };
  }
  const out: ChoiceEvent[] = [];
  for await (const ev of omitThinking(events())) out.push(ev);
  t.same(out.map((e) => [e.type, 'text' in e ? e.text : null]), [['reasoning', ''], ['content', 'Hi'], ['reasoning', ''], ['finish', null]]);
});
