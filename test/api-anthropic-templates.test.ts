import t from 'tap';
import { translateMessagesRequest } from '../src/api/anthropic-request.ts';
import { toChatMessages } from '../src/api/messages.ts';
import { templateRendersMidSystem } from '../src/api/messages-route.ts';
import type { ServedModel } from '../src/api/types.ts';
import { loadChatTemplate } from '../src/chat/template.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';

// A system message inside `messages` (Claude Code sends one after the user's first turn) renders
// with every family's real chat template: where it stands when the template says a system turn
// anywhere, else merged into the leading system prompt (issue 21 item 1).

const body = {
  model: 'm',
  max_tokens: 8,
  system: 'Top rule.',
  messages: [
    { role: 'user', content: 'say hi' },
    { role: 'system', content: 'MID-CONVERSATION-NOTE' },
    { role: 'assistant', content: 'hi' },
    { role: 'user', content: 'again' },
  ],
};

for (const family of ['qwen3', 'qwen2', 'llama', 'mistral'] as const) {
  t.test(family, async (t) => {
    const dir = await tinyCheckpoint(family);
    const tokenizer = await loadTokenizer(dir);
    const template = await loadChatTemplate(dir, tokenizer);
    const model = { template } as unknown as ServedModel;
    const inline = templateRendersMidSystem(model);
    const messages = toChatMessages(translateMessagesRequest(body, { systemInline: inline }).messages);
    const text = template.render(messages, { addGenerationPrompt: true });
    t.ok(text.includes('MID-CONVERSATION-NOTE'), `the note reaches the prompt (${inline ? 'in place' : 'merged up front'})`);
    t.ok(text.includes('Top rule.'));
    if (inline) t.ok(text.indexOf('MID-CONVERSATION-NOTE') > text.indexOf('say hi'), 'after the turn it followed');
    else t.ok(text.indexOf('MID-CONVERSATION-NOTE') < text.indexOf('say hi'), 'in the leading system prompt');
    if (family === 'qwen3' || family === 'qwen2') t.equal(inline, true, 'Qwen templates render a system turn anywhere');
  });
}

t.test('a template that refuses or drops a later system turn: the note is merged up front', async (t) => {
  // What Gemma's and older Mistral templates do: raise on a role out of alternation, or render
  // only the first system message.
  const raising = { template: { render: (ms: readonly { role: string }[]) => { if (ms.some((m, i) => m.role === 'system' && i > 0)) throw new Error('Conversation roles must alternate user/assistant/user/assistant/...'); return 'ok'; } } } as unknown as ServedModel;
  const dropping = { template: { render: (ms: readonly { role: string; content: string }[]) => ms.filter((m, i) => m.role !== 'system' || i === 0).map((m) => m.content).join('\n') } } as unknown as ServedModel;
  t.equal(templateRendersMidSystem(raising), false);
  t.equal(templateRendersMidSystem(dropping), false);
  const merged = translateMessagesRequest(body, { systemInline: templateRendersMidSystem(dropping) }).messages;
  t.same(merged[0], { role: 'system', content: 'Top rule.\n\nMID-CONVERSATION-NOTE' });
  t.notOk(merged.slice(1).some((m) => m.role === 'system'));
});
