// The path a user runs: `hearth up --model FILE.gguf --workers 2` (nats-server, gateway, two worker
// processes), the real openai SDK as client. The text is the text hearth gives on the original
// safetensors; the chat template is the GGUF's own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import OpenAI from 'openai';
import { convertCheckpoint } from '../bench/llama-cpp/src/hf-to-gguf.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { startHearth } from './helpers/hearth.ts';
import { greedy, natsMissing } from './helpers/nats.ts';
import { repoRoot } from './helpers/runtime-exact.ts';

const orig = path.resolve(repoRoot, '../shared/models/tinystories-656k');
const skip = natsMissing() || (fs.existsSync(path.join(orig, 'config.json')) ? false : 'tinystories-656k is absent (../shared/models)');

t.test('hearth up --model FILE.gguf serves the OpenAI API', { skip }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-ggufserve-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  // hearth's state (where the GGUF's folder goes) in the test's own folder, for the child too.
  const prevHome = process.env['HEARTH_HOME'];
  process.env['HEARTH_HOME'] = path.join(work, 'home');
  t.teardown(() => { if (prevHome === undefined) delete process.env['HEARTH_HOME']; else process.env['HEARTH_HOME'] = prevHome; });
  const file = path.join(work, 'tinystories-656k-f16.gguf');
  convertCheckpoint(orig, file, 'f16');

  const tok = await loadTokenizer(orig);
  const ids = tok.encode('Once upon a time', { addSpecialTokens: true });
  const local = await loadLocalModel(orig, { threads: 1 });
  const want = tok.decode(await greedy(local.pipeline, 'ref', Int32Array.from(ids), 20), { skipSpecialTokens: true });
  await local.pipeline.close();

  const h = await startHearth(t, { modelDir: file, workers: 2 });
  t.equal(h.mode, 'process', 'hearth up ran');
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey });
  const models = await client.models.list();
  t.ok(models.data.some((m) => m.id === h.modelId), `/v1/models lists ${h.modelId}`);
  const c = await client.completions.create({ model: h.modelId, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
  t.equal(c.choices[0]?.text, want, `completion from the .gguf equals the safetensors' greedy text: ${JSON.stringify(want)}`);
  // tokenizer.chat_template here joins the message contents after bos: the same prompt.
  const chat = await client.chat.completions.create({ model: h.modelId, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 20, temperature: 0 });
  t.equal(chat.choices[0]?.message.content, want, 'the chat template from the GGUF renders the same prompt');
  t.equal(chat.usage?.prompt_tokens, ids.length, `prompt_tokens ${chat.usage?.prompt_tokens}`);
  const folders = fs.readdirSync(path.join(work, 'home', 'gguf'), { withFileTypes: true }).filter((e) => e.isDirectory());
  t.equal(folders.length, 1, `the GGUF's folder went to HEARTH_HOME: ${folders.map((e) => e.name).join(', ')}`);
});
