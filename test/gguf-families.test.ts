// Every family hearth runs, through GGUF: a generated checkpoint of each (Qwen2 with q/k/v biases,
// Qwen3 with q/k norms, Llama with llama.cpp's q/k row permutation, Mistral untied, Qwen3-MoE and
// Mixtral with their experts stacked in ffn_*_exps and sliced back out by byte range) written as an
// F32 GGUF tokenizes (byte-level BPE from tokenizer.ggml.tokens/merges/pre), renders its chat
// template and generates exactly as the safetensors folder does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { convertCheckpoint } from '../bench/llama-cpp/src/hf-to-gguf.ts';
import { loadChatTemplate } from '../src/chat/template.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { resolveGgufModel } from '../src/cli/served-model.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { greedy } from './helpers/nats.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-gguffam-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

const TEXTS = ['Hello, world! 12345 tokens', "  It's   spaced\n\n\tand tabbed", 'naïve café — 東京 🙂', '<|im_start|>user\nhi<|im_end|>'];

for (const family of ['qwen2', 'qwen3', 'llama', 'mistral', 'qwen3-moe', 'mixtral'] as const) {
  t.test(`${family}: an F32 GGUF is the checkpoint`, async (t) => {
    const dir = path.join(work, family);
    await generateCheckpoint(dir, { preset: `tiny-${family}`, seed: 7 });
    const file = path.join(work, `${family}.gguf`);
    convertCheckpoint(dir, file, 'f32');
    const view = await resolveGgufModel(file, path.join(work, 'state'));
    if (view === null) throw new Error('not resolved');
    const [tok0, tok] = [await loadTokenizer(dir), await loadTokenizer(view)];
    for (const text of TEXTS) t.same(tok.encode(text, { addSpecialTokens: true }), tok0.encode(text, { addSpecialTokens: true }), `${JSON.stringify(text)} tokenizes the same`);
    const msgs = [{ role: 'user' as const, content: 'Write a haiku about rain.' }];
    const [tpl0, tpl] = [await loadChatTemplate(dir, tok0), await loadChatTemplate(view, tok)];
    const rendered = tpl.render(msgs, { addGenerationPrompt: true });
    t.equal(rendered, tpl0.render(msgs, { addGenerationPrompt: true }), 'the chat template renders the same prompt');
    const ids = tok.encode(rendered, { addSpecialTokens: false });
    const run = async (d: string): Promise<number[]> => {
      const m = await loadLocalModel(d, { threads: 1, stages: 2 });
      try {
        return await greedy(m.pipeline, 's', Int32Array.from(ids), 12);
      } finally {
        await m.pipeline.close();
      }
    };
    t.same(await run(view), await run(dir), 'greedy tokens over two stages are the same');
  });
}
