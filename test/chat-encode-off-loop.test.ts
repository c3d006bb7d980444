// encode-off-loop.ts (issue 19, item 2): big prompts are tokenized on a worker thread that loads
// the same tokenizer, so the ids are exactly the inline ones; a prompt past the deadline is a 400
// naming the limit and the next one is served by a fresh thread.
import t from 'tap';
import { loadChatTemplate } from '../src/chat/template.ts';
import { INLINE_CHARS, INLINE_MESSAGES, encodeOffLoop } from '../src/chat/encode-off-loop.ts';
import { planChat, planChatOffLoop } from '../src/api/chat-request.ts';
import type { ChatMessageBody, ChatRequestBody } from '../src/api/openai-types.ts';
import { DEFAULT_LIMITS, type ServedModel } from '../src/api/types.ts';
import { templateSourceOf } from './helpers/hearth.ts';
import { isHearthError } from '../src/errors/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';

const dir = await tinyCheckpoint('qwen3');
const tok = await loadTokenizer(dir);
// Loading the template registers the folder of both (what the gateway does at start).
const template = await loadChatTemplate(dir, tok);
const model: ServedModel = { id: 'tiny', family: 'qwen3', contextLength: 40_960, tokenizer: tok, template, templateSource: templateSourceOf(dir), created: 1 };

t.test('a big text gets exactly the inline ids, special tokens included', async (t) => {
  const text = '<|im_start|>user\nhello world, 123 héllo 🙂\n\t  spaced   out<|im_end|>\n'.repeat(2000);
  t.ok(text.length > INLINE_CHARS, 'big enough to leave the event loop');
  for (const addSpecialTokens of [false, true]) {
    const off = await encodeOffLoop(tok, text, { addSpecialTokens });
    t.same(Array.from(off), tok.encode(text, { addSpecialTokens }), `addSpecialTokens ${addSpecialTokens}`);
  }
});

t.test('past the deadline: a 400 naming the limit, and the next prompt is served', async (t) => {
  // A 400k-space run costs BPE seconds (superlinear in one pre-token): far past 100 ms.
  const err = await encodeOffLoop(tok, ' '.repeat(400_000), { addSpecialTokens: false, param: 'prompt', deadlineMs: 100 }).then(() => null, (e: unknown) => e);
  t.ok(isHearthError(err), String(err));
  if (!isHearthError(err)) return;
  t.equal(err.status, 400);
  t.equal(err.param, 'prompt');
  t.match(err.message, /limit 0\.1 s/);
  const text = 'after the deadline '.repeat(1000);
  t.same(Array.from(await encodeOffLoop(tok, text, { addSpecialTokens: false })), tok.encode(text, { addSpecialTokens: false }), 'a fresh thread answers');
});

t.test('a long conversation is rendered and tokenized on the thread into the very same plan', async (t) => {
  const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
  const messages: ChatMessageBody[] = [{ role: 'system', content: 'Be brief.' }];
  for (let i = 0; i < INLINE_MESSAGES; i++) {
    messages.push({ role: 'user', content: `question ${i}: what is the weather in Paris?` });
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `c${i}`, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] });
    messages.push({ role: 'tool', tool_call_id: `c${i}`, content: `sunny, ${i} degrees` });
  }
  const body: ChatRequestBody = { model: 'tiny', messages, tools: [weather] };
  const inline = planChat(body, model, DEFAULT_LIMITS);
  const off = await planChatOffLoop(body, model, DEFAULT_LIMITS);
  t.equal(off.promptText, inline.promptText, 'same text');
  t.same(Array.from(off.prompt), Array.from(inline.prompt), 'same ids');
  t.equal(off.maxTokens, inline.maxTokens);
  // A template error reads the same from the thread (here: a template variable that cannot be
  // iterated, passed through chat_template_kwargs).
  const noUser: ChatRequestBody = { model: 'tiny', messages: Array.from({ length: INLINE_MESSAGES + 1 }, () => ({ role: 'user' as const, content: 'x' })), chat_template_kwargs: { tools: 5 } };
  const err = (f: () => unknown): unknown => { try { f(); return null; } catch (e) { return e; } };
  const a = err(() => planChat(noUser, model, DEFAULT_LIMITS));
  const b = await planChatOffLoop(noUser, model, DEFAULT_LIMITS).then(() => null, (e: unknown) => e);
  t.ok(isHearthError(a) && isHearthError(b), `both refuse (${String(a)})`);
  if (isHearthError(a) && isHearthError(b)) {
    t.equal(b.message, a.message);
    t.equal(b.status, 400);
    t.equal(b.param, a.param);
  }
});
