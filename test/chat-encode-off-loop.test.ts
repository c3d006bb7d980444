// encode-off-loop.ts (issue 19, item 2): big prompts are tokenized on a worker thread that loads
// the same tokenizer, so the ids are exactly the inline ones; a prompt past the deadline is a 400
// naming the limit and the next one is served by a fresh thread.
import t from 'tap';
import { loadChatTemplate } from '../src/chat/template.ts';
import { INLINE_CHARS, encodeOffLoop } from '../src/chat/encode-off-loop.ts';
import { isHearthError } from '../src/errors/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';

const dir = await tinyCheckpoint('qwen3');
const tok = await loadTokenizer(dir);
// Loading the template registers the tokenizer's folder (what the gateway does at start).
await loadChatTemplate(dir, tok);

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
