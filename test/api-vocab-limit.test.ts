// Issue 20 item 5: a prompt with a token id the model has no embedding row for is refused with a
// 400 that says so, on every API, instead of reaching onnxruntime (a 500 with raw
// `GatherBlockQuantized … idx=…` text). The checkpoint's vocab (2000) is far smaller than its
// tokenizer's (151669 Qwen3 ids), as with a model paired with a larger tokenizer: nearly any text,
// and every chat template's special tokens, land past it. Real `hearth up` (nats-server, 2 worker
// processes), the real openai SDK as client.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { generateCheckpoint } from '../src/model/index.ts';
import { startHearth } from './helpers/hearth.ts';

const VOCAB = 2000;

t.test('ids past the model vocab: 400 (HEARTH_ERR_TOKEN_OUT_OF_VOCAB) on every API; ids inside serve', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-vocab-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // 'full': the uncut tokenizer (a generated one is cut to the vocab by default, see api-vocab-fit).
  await generateCheckpoint(dir, { preset: 'tiny-qwen3', vocabSize: VOCAB, seed: 3, tokenizer: 'full' });
  const h = await startHearth(t, { modelDir: dir, workers: 2 });
  t.teardown(() => h.stop());
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0 });

  const expect400 = async (what: string, p: Promise<unknown>): Promise<void> => {
    try {
      await p;
      t.fail(`${what}: expected a 400`);
    } catch (e) {
      const err = e as { status?: number; type?: string; message?: string };
      t.equal(err.status, 400, `${what}: 400`);
      t.equal(err.type, 'invalid_request_error', `${what}: an invalid request, not a server error`);
      t.match(err.message ?? '', /outside this model's vocabulary \(ids 0\.\.1999\)/, `${what}: the message names the vocabulary`);
    }
  };

  // CJK text tokenizes to ids far past 2000 (the repro); so do the chat template's specials.
  await expect400('chat', client.chat.completions.create({ model: h.modelId, messages: [{ role: 'user', content: '你好，世界' }], max_tokens: 4 }));
  await expect400('chat stream', (async () => {
    const s = await client.chat.completions.create({ model: h.modelId, messages: [{ role: 'user', content: '你好' }], max_tokens: 4, stream: true });
    for await (const _ of s) { /* drain */ }
  })());
  await expect400('completions text', client.completions.create({ model: h.modelId, prompt: '你好，世界', max_tokens: 4 }));
  // A token-array prompt the tokenizer would accept (151669 ids) but the model cannot embed.
  await expect400('completions token array', client.completions.create({ model: h.modelId, prompt: [5, 144370], max_tokens: 4 }));
  await expect400('responses', client.responses.create({ model: h.modelId, input: '你好', max_output_tokens: 16 }));

  // Anthropic's Messages API: its own error shape, same status and message.
  const r = await fetch(`${h.origin}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': h.apiKey, authorization: `Bearer ${h.apiKey}`, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: h.modelId, max_tokens: 4, messages: [{ role: 'user', content: '你好' }] }),
  });
  t.equal(r.status, 400, 'messages: 400');
  t.match(await r.text(), /outside this model's vocabulary/, 'messages: says why');

  // logit_bias keys the tokenizer knows but the model lacks.
  try {
    await client.completions.create({ model: h.modelId, prompt: [1, 2], max_tokens: 2, logit_bias: { '150000': 5 } });
    t.fail('logit_bias past the vocab: expected a 400');
  } catch (e) {
    t.equal((e as { status?: number }).status, 400, 'logit_bias past the vocab: 400');
    t.match((e as Error).message, /outside this model's vocabulary/, 'logit_bias: says why');
  }

  // Ids inside the vocabulary still serve, and the cluster is intact after the refusals.
  const ok = await client.completions.create({ model: h.modelId, prompt: [1, 2, 3, 4], max_tokens: 3, temperature: 0 });
  t.equal(ok.choices.length, 1, 'an in-vocabulary token-array prompt serves');
  t.ok((ok.usage?.completion_tokens ?? 0) > 0, 'and generates');
});
