import t, { type Test } from 'tap';
import { planChat } from '../src/api/chat-request.ts';
import { planCompletion } from '../src/api/completion-request.ts';
import { DEFAULT_LIMITS, type ServedModel } from '../src/api/types.ts';
import type { ChatRequestBody, CompletionRequestBody } from '../src/api/openai-types.ts';
import { loadChatTemplate } from '../src/chat/template.ts';
import { isHearthError } from '../src/errors/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { templateSourceOf, tinyCheckpoint } from './helpers/hearth.ts';

// Request → prompt mapping, socket-free, with the real Qwen3 tokenizer and chat template. Expected
// prompts are computed independently: the template rendered directly with the messages as the
// template engineer's API takes them, then tokenized.

const dir = await tinyCheckpoint('qwen3');
const tokenizer = await loadTokenizer(dir);
const template = await loadChatTemplate(dir, tokenizer);
const model: ServedModel = { id: 'tiny', family: 'qwen3', contextLength: 512, tokenizer, template, templateSource: templateSourceOf(dir), created: 1 };
const limits = { ...DEFAULT_LIMITS, maxTokensDefault: 100 };
const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const time = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };

const plan = (b: Partial<ChatRequestBody>) => planChat({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], ...b } as ChatRequestBody, model, limits);
const ids = (text: string) => Array.from(tokenizer.encode(text, { addSpecialTokens: false }));

function fails(t: Test, fn: () => unknown, code: string, param: string | null, status = 400): void {
  try {
    fn();
    t.fail(`expected ${code}`);
  } catch (e) {
    t.ok(isHearthError(e), `HearthError (${String(e)})`);
    if (!isHearthError(e)) return;
    t.equal(e.code, code, e.message);
    t.equal(e.param, param);
    t.equal(e.status, status);
  }
}

t.test('the prompt is the template rendered with the messages, tokenized', async (t) => {
  const p = plan({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }] });
  const text = template.render([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }], { addGenerationPrompt: true });
  t.equal(p.promptText, text);
  t.same(Array.from(p.prompt), ids(text));
  t.match(p.promptText, /<\|im_start\|>assistant\n$/, 'generation prompt added');
  t.equal(p.n, 1);
  t.equal(p.stream, false);
  t.equal(p.maxTokens, 100, 'limits.maxTokensDefault when no max_tokens');
  t.ok(p.stopTokens.includes(tokenizer.idOf('<|im_end|>')!), '<|im_end|> ends a turn');
  t.equal(p.constraint, null);
  t.equal(p.toolSyntax, null);
  t.equal(p.logprobs, false);
  t.equal(p.sampling[0]!.topLogprobs, -1);
});

t.test('developer is system; text parts join with newlines', async (t) => {
  const a = plan({ messages: [{ role: 'developer', content: 'Rules.' }, { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] }] });
  const b = plan({ messages: [{ role: 'system', content: 'Rules.' }, { role: 'user', content: 'one\ntwo' }] });
  t.equal(a.promptText, b.promptText);
});

t.test('image and unknown parts are a clear 400 naming the part', async (t) => {
  fails(t, () => plan({ messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url' }] }] }), 'HEARTH_ERR_INVALID_REQUEST', 'messages[0].content[1].type');
  fails(t, () => plan({ messages: [{ role: 'user', content: [{ type: 'hologram' }] }] }), 'HEARTH_ERR_INVALID_REQUEST', 'messages[0].content[0].type');
  fails(t, () => plan({ messages: [{ role: 'user', content: null }] }), 'HEARTH_ERR_INVALID_REQUEST', 'messages[0].content');
});

t.test('model must be the served one', async (t) => {
  fails(t, () => plan({ model: 'gpt-4o' }), 'HEARTH_ERR_MODEL_NOT_FOUND', 'model', 404);
});

t.test('tool_choice none renders no tools and parses no calls; auto renders them', async (t) => {
  const none = plan({ tools: [weather], tool_choice: 'none' });
  t.equal(none.promptText, plan({}).promptText, 'same prompt as without tools');
  t.equal(none.toolSyntax, null);
  t.equal(none.constraint, null);
  const auto = plan({ tools: [weather, time] });
  t.match(auto.promptText, /get_weather/);
  t.match(auto.promptText, /get_time/);
  t.equal(auto.promptText, template.render([{ role: 'user', content: 'hi' }], { tools: [weather, time], addGenerationPrompt: true }));
  t.equal(auto.toolSyntax, 'hermes', 'Qwen3 template speaks <tool_call>');
  t.equal(auto.constraint, null, 'auto without strict tools is parsed, not constrained');
});

t.test('required, named and strict constrain decoding', async (t) => {
  const req = plan({ tools: [weather, time], tool_choice: 'required', max_tokens: 50 });
  t.match(req.constraint, { kind: 'tool_call', mode: 'required', parallel: true, syntax: 'hermes', maxTokens: 50 });
  const named = plan({ tools: [weather, time], tool_choice: { type: 'function', function: { name: 'get_time' } }, parallel_tool_calls: false });
  t.match(named.constraint, { kind: 'tool_call', mode: 'named', name: 'get_time', parallel: false });
  const strict = plan({ tools: [{ type: 'function', function: { ...weather.function, strict: true } }] });
  t.match(strict.constraint, { kind: 'tool_call', mode: 'auto-strict' });
  fails(t, () => plan({ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }), 'HEARTH_ERR_INVALID_REQUEST', 'tool_choice');
  fails(t, () => plan({ tool_choice: 'required' }), 'HEARTH_ERR_INVALID_REQUEST', 'tool_choice');
  t.equal(plan({ tool_choice: 'auto' }).toolSyntax, null, 'auto without tools is accepted (LangChain sends it)');
  fails(t, () => plan({ tools: [weather, weather] }), 'HEARTH_ERR_INVALID_REQUEST', 'tools[1].function.name');
});

t.test('invalid tool schemas and response schemas are 400s', async (t) => {
  fails(t, () => plan({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'objekt' } } }] }), 'HEARTH_ERR_TOOL_SCHEMA', 'tools[0].function.parameters');
  fails(t, () => plan({ tools: [time, { type: 'function', function: { name: 'g', parameters: { type: 'object', properties: { a: { minimum: 'x' } } } } }] }), 'HEARTH_ERR_TOOL_SCHEMA', 'tools[1].function.parameters');
  fails(t, () => plan({ tools: [{ type: 'function', function: { name: 'f', parameters: { $ref: 'https://example.com/s.json' } } }] }), 'HEARTH_ERR_TOOL_SCHEMA', 'tools[0].function.parameters');
  fails(t, () => plan({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 42 } } } }), 'HEARTH_ERR_RESPONSE_SCHEMA', 'response_format.json_schema.schema');
  const ok = plan({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] } } } });
  t.match(ok.constraint, { kind: 'json_schema' });
  t.ok(ok.format?.kind === 'json_schema' && ok.format.validate({ a: 1 }) && !ok.format.validate({ a: 'x' }), 'validator compiled from the schema');
  t.match(plan({ response_format: { type: 'json_object' } }).constraint, { kind: 'json_object' });
  t.equal(plan({ response_format: { type: 'text' } }).constraint, null);
});

t.test('assistant tool calls and tool results round-trip through the template', async (t) => {
  const messages = [
    { role: 'user' as const, content: 'Weather in Paris?' },
    { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool' as const, tool_call_id: 'call_1', content: '{"temp":21}' },
  ];
  const p = plan({ tools: [weather], messages });
  t.match(p.promptText, /"city": ?"Paris"/);
  t.match(p.promptText, /<tool_response>\n\{"temp":21\}\n<\/tool_response>/);
  fails(t, () => plan({ messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'nope', content: 'r' }] }), 'HEARTH_ERR_INVALID_REQUEST', 'messages[1].tool_call_id');
  fails(t, () => plan({ messages: [{ role: 'tool', content: 'r' }] }), 'HEARTH_ERR_INVALID_REQUEST', 'messages[0].tool_call_id');
});

t.test('sampling fields: n seeds seed+i, logprobs, stops, logit_bias', async (t) => {
  const p = plan({ n: 3, seed: 41, temperature: 0.5, top_p: 0.9, presence_penalty: 1, frequency_penalty: -1, logprobs: true, top_logprobs: 4, stop: ['END', ''] });
  t.same(p.sampling.map((s) => s.seed), [41, 42, 43]);
  t.ok(p.sampling.every((s) => s.temperature === 0.5 && s.topP === 0.9 && s.presencePenalty === 1 && s.frequencyPenalty === -1 && s.topLogprobs === 4));
  t.equal(p.logprobs, true);
  t.same(p.stops, ['END']);
  t.same(plan({ seed: -1 }).sampling[0]!.seed, 2 ** 32 - 1, '64-bit seeds fold to 32 bits');
  t.notSame(plan({}).sampling[0]!.seed, plan({}).sampling[0]!.seed, 'no seed: a random one per request');
  t.same(plan({ logit_bias: { '42': -100 } }).sampling[0]!.logitBias, { 42: -100 });
  fails(t, () => plan({ logit_bias: { abc: 1 } }), 'HEARTH_ERR_INVALID_REQUEST', 'logit_bias');
  fails(t, () => plan({ logit_bias: { '999999999': 1 } }), 'HEARTH_ERR_INVALID_REQUEST', 'logit_bias');
  fails(t, () => plan({ top_logprobs: 2 }), 'HEARTH_ERR_INVALID_REQUEST', 'top_logprobs');
  t.equal(plan({ stream: true, stream_options: { include_usage: true } }).includeUsage, true);
  t.equal(plan({ stream: false, stream_options: { include_usage: true } }).includeUsage, false);
});

t.test('context: a prompt that does not fit is context_length_exceeded; max_tokens is honoured or refused, never cut', async (t) => {
  const long = 'word '.repeat(600);
  fails(t, () => plan({ messages: [{ role: 'user', content: long }] }), 'HEARTH_ERR_CONTEXT_LENGTH', 'messages');
  const huge = 'x'.repeat(3_000_000);
  const t0 = performance.now();
  fails(t, () => plan({ messages: [{ role: 'user', content: huge }] }), 'HEARTH_ERR_CONTEXT_LENGTH', 'messages');
  t.ok(performance.now() - t0 < 1000, 'a huge prompt is refused without tokenizing it');
  // Issue 21: over the room left, or over the operator's cap, is a 400 naming the limit.
  fails(t, () => plan({ max_tokens: 100000 }), 'HEARTH_ERR_MAX_TOKENS_CONTEXT', 'max_tokens');
  t.equal(plan({ max_tokens: 7, max_completion_tokens: 9 }).maxTokens, 9, 'max_completion_tokens wins');
  fails(t, () => planChat({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 300 } as ChatRequestBody, model, { ...limits, maxTokens: 50 }), 'HEARTH_ERR_MAX_TOKENS_CAP', 'max_tokens');
  t.equal(planChat({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }] } as ChatRequestBody, model, { ...limits, maxTokensDefault: 200, maxTokens: 50 }).maxTokens, 50, 'the default is capped by limits.maxTokens');
});

t.test('think blocks: reasoning split on for Qwen3, off when constrained; chat_template_kwargs reach the template', async (t) => {
  t.same(plan({}).reasoning, { startInside: false });
  t.equal(plan({ response_format: { type: 'json_object' } }).reasoning, null);
  t.equal(plan({ tools: [weather], tool_choice: 'required' }).reasoning, null);
  const off = plan({ chat_template_kwargs: { enable_thinking: false } });
  t.match(off.promptText, /<think>\n\n<\/think>\n\n$/, 'enable_thinking false closes the block in the prompt');
  t.equal(off.promptText, template.render([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true, vars: { enable_thinking: false } }));
});

t.test('lone surrogates do not break tokenization', async (t) => {
  const p = plan({ messages: [{ role: 'user', content: 'a\ud800b\udc00c' }] });
  t.match(p.promptText, /a\ufffdb\ufffdc/);
});

t.test('legacy completions: raw prompts, token prompts, n per prompt', async (t) => {
  const c = (b: Partial<CompletionRequestBody>) => planCompletion({ model: 'tiny', prompt: 'Once upon a time', ...b } as CompletionRequestBody, model);
  const p = c({});
  t.same(Array.from(p.prompts[0]!.ids), Array.from(tokenizer.encode('Once upon a time', { addSpecialTokens: true })));
  t.equal(p.maxTokens[0], 16, "OpenAI's default max_tokens for completions");
  const many = c({ prompt: ['a', 'b c'], n: 2 });
  t.equal(many.prompts.length, 2);
  t.equal(many.sampling.length, 2);
  const tokens = c({ prompt: [1, 2, 3] });
  t.same(Array.from(tokens.prompts[0]!.ids), [1, 2, 3]);
  fails(t, () => c({ prompt: [tokenizer.vocabSize + 5] }), 'HEARTH_ERR_INVALID_REQUEST', 'prompt[0]');
  fails(t, () => c({ best_of: 3 }), 'HEARTH_ERR_INVALID_REQUEST', 'best_of');
  fails(t, () => c({ suffix: 'x', echo: true }), 'HEARTH_ERR_INVALID_REQUEST', 'echo');
  fails(t, () => c({ suffix: 'x', prompt: [1, 2] }), 'HEARTH_ERR_INVALID_REQUEST', 'prompt[0]');
  fails(t, () => c({ echo: true, logprobs: 2 }), 'HEARTH_ERR_INVALID_REQUEST', 'logprobs');
  fails(t, () => c({ model: 'other' }), 'HEARTH_ERR_MODEL_NOT_FOUND', 'model', 404);
});
