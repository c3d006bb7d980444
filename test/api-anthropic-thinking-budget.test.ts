import Anthropic from '@anthropic-ai/sdk';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startHearth, tinyCheckpoint } from './helpers/hearth.ts';

// thinking.budget_tokens enforced while decoding (issue 21 item 1), end to end: `hearth up` (nats,
// gateway, a worker process) serving the tiny Qwen3 checkpoint with its template changed so that
// the generation prompt opens a think block (as R1-style and some Qwen3 variants' templates do):
// the random model would think to max_tokens; with a budget it is made to close the block after
// budget_tokens, and the rest of the turn is the answer (without the budget rule, the same request
// is one thinking block of 1100 tokens: checked by disabling it).

const src = await tinyCheckpoint('qwen3');
const root = mkdtempSync(path.join(os.tmpdir(), 'hearth-think-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const dir = path.join(root, 'tiny-qwen3-thinks');
cpSync(src, dir, { recursive: true });
const cfgFile = path.join(dir, 'tokenizer_config.json');
const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { chat_template: string };
const opened = cfg.chat_template.replace("{{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking", "{{- '<|im_start|>assistant\\n<think>\\n' }}\n    {%- if enable_thinking");
if (opened === cfg.chat_template) throw new Error('the Qwen3 template changed: update this test');
writeFileSync(cfgFile, JSON.stringify({ ...cfg, chat_template: opened }));

const h = await startHearth(t, { workers: 1, modelDir: dir });
const anthropic = new Anthropic({ baseURL: h.origin, apiKey: h.apiKey, maxRetries: 0, timeout: 300_000 });

t.test('past budget_tokens inside <think>, the block closes and the answer follows', async (t) => {
  const ask = { model: h.modelId, max_tokens: 1100, temperature: 0, messages: [{ role: 'user' as const, content: 'Think, then answer.' }] };
  const m = await anthropic.messages.create({ ...ask, thinking: { type: 'enabled', budget_tokens: 1024 } });
  t.equal(m.content[0]?.type, 'thinking', 'the turn starts inside the think block the prompt opened');
  const text = m.content.filter((b) => b.type === 'text').map((b) => (b.type === 'text' ? b.text : '')).join('');
  t.ok(text.length > 0, `an answer after the forced </think> (${m.usage.output_tokens} tokens in all)`);
  t.equal(m.stop_reason === 'end_turn' || m.stop_reason === 'max_tokens', true, String(m.stop_reason));
});
