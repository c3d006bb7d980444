// Issue 20 (gap A): a generated checkpoint whose vocab is smaller than the Qwen3 tokenizer's 151669
// ids (the Llama 3.x presets' 128256, here 4096) ships that tokenizer cut to fit: specials and
// chat-template tags re-numbered into the top of the vocab, BPE ids and merges that no longer fit
// dropped. Before, every chat request to such a model was refused with HEARTH_ERR_TOKEN_OUT_OF_VOCAB
// (<|im_start|> is 151644). Checked with two maintained tokenizer libraries (the project's loader
// over @huggingface/tokenizers, and @lenml/tokenizers), then through a real `hearth up` (nats-server,
// 2 worker processes) with the openai SDK.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { TokenizerLoader } from '@lenml/tokenizers';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { loadChatTemplate } from '../src/chat/template.ts';
import { startHearth } from './helpers/hearth.ts';

const VOCAB = 4096;
const TEXT = 'Hello, world! 你好，世界 ünïcödé 🎉 <|im_start|>user\nhi<|im_end|>\n<think>x</think><tool_call>{"a":1}</tool_call>';

t.test('a 4096-id model gets a tokenizer that fits, and chat serves through the gateway', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-vocab-fit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await generateCheckpoint(dir, { preset: 'tiny-llama', vocabSize: VOCAB, seed: 5 });

  // The project's loader: every id fits, text round-trips, specials are single tokens at the top.
  const tok = await loadTokenizer(dir);
  t.equal(tok.vocabSize, VOCAB, 'the tokenizer has exactly the model\'s ids');
  const ids = tok.encode(TEXT);
  t.ok(Math.max(...ids) < VOCAB, `every id of mixed text fits (max ${Math.max(...ids)})`);
  t.equal(tok.decode(ids), TEXT, 'text round-trips');
  for (const s of ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<tool_call>', '</tool_call>']) {
    const id = tok.idOf(s);
    t.ok(id !== undefined && id >= VOCAB - 26 && id < VOCAB, `${s} is one token at the top of the vocab (${id})`);
  }
  const ck = openCheckpoint(dir);
  t.same([...tok.eosTokenIds].sort(), [...ck.config.eosTokenIds].sort(), 'config.json / generation_config eos ids are the cut tokenizer\'s');
  t.same(tok.eosTokenIds, [tok.idOf('<|endoftext|>'), tok.idOf('<|im_end|>')].sort((a, b) => a! - b!), 'eos = <|endoftext|>, <|im_end|>');

  // An independent implementation reads the same files to the same ids.
  const lenml = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
  });
  t.same(lenml.encode(TEXT, { add_special_tokens: false }), ids, '@lenml/tokenizers encodes to the same ids');
  t.equal(lenml.decode(ids), TEXT, '@lenml/tokenizers decodes them back');

  // The chat template (with tools) still renders, and its prompt fits the vocab.
  const tmpl = await loadChatTemplate(dir, tok);
  const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const messages = [{ role: 'user' as const, content: '你好! What is the weather in Paris?' }];
  const prompt = tok.encode(tmpl.render(messages, { tools, addGenerationPrompt: true }));
  t.ok(Math.max(...prompt) < VOCAB, `the rendered chat prompt's ids fit (max ${Math.max(...prompt)})`);
  t.ok(prompt.includes(tok.idOf('<|im_start|>')!), 'the template\'s <|im_start|> is the special token');

  const h = await startHearth(t, { modelDir: dir, workers: 2 });
  t.teardown(() => h.stop());
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: h.modelId, messages, tools, max_tokens: 6, temperature: 0 });
  t.equal(r.choices.length, 1, 'chat with tools is served (no 400)');
  t.equal(r.usage?.prompt_tokens, prompt.length, 'the gateway tokenized the same prompt');
  t.ok((r.usage?.completion_tokens ?? 0) > 0, 'and generated');
  let chunks = 0;
  const s = await client.chat.completions.create({ model: h.modelId, messages: [{ role: 'user', content: '你好，世界' }], max_tokens: 4, stream: true });
  for await (const c of s) if (c.choices.length > 0) chunks++;
  t.ok(chunks > 0, 'a streamed chat in CJK is served');
});

t.test('a vocab too small for the byte symbols and specials is refused with a clear message', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-vocab-fit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await t.rejects(generateCheckpoint(dir, { preset: 'tiny-qwen3', vocabSize: 200, numLayers: 1 }), /too small for this tokenizer.*256 byte symbols \+ 26 added tokens/);
});
