// stories260k (a real pretrained Llama 2, head_dim 8) equals the reference for 1, 2 and 3 uneven
// stages on the default (fused) attention path and on the plain-op path (GroupQueryAttention's
// rotary kernel needs head_dim % 16 == 0, so it cannot run this model); greedy decoding from
// "Once upon a time" tells the known story.
import fs from 'node:fs';
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { argmax, referenceGreedy } from '../src/model/reference.ts';
import { Chain, exactRun, reference, stories260kDir, tokenStream } from './helpers/runtime-exact.ts';

const skip = fs.existsSync(`${stories260kDir}/config.json`) ? false : 'stories260k is absent (../shared/models)';

t.test('stories260k: fused and plain paths equal the reference for every split', { skip }, async (t) => {
  const dir = stories260kDir;
  const a = tokenStream(40, 512, 31);
  const b = tokenStream(30, 512, 32);
  const refA = reference(dir, a);
  const refB = reference(dir, b);
  for (const attention of ['fused', 'plain'] as const) {
    for (const split of [[[0, 5]], [[0, 2], [2, 5]], [[0, 1], [1, 4], [4, 5]]] as const) {
      const chain = await Chain.open(t, dir, split, 'none', attention === 'plain' ? { attention } : {});
      t.equal(chain.engines[0]?.info.attention, attention, `${attention} attention`);
      const r = await exactRun(chain, { a, aPrompt: 16, b, bPrompt: 6, chunk: split.length === 2 ? 5 : 16 }, refA, refB);
      t.ok(r.maxDiff <= 1e-4, `${attention}, split ${JSON.stringify(split)}: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
      await chain.close();
    }
  }
});

t.test('stories260k: greedy continuation of "Once upon a time" matches the reference and reads as the story', { skip }, async (t) => {
  const dir = stories260kDir;
  const tj = JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, 'utf8')) as { model: { vocab: Record<string, number> } };
  const vocab = tj.model.vocab;
  const pieces: string[] = [];
  for (const [k, v] of Object.entries(vocab)) pieces[v] = k;
  const prompt = [1, ...['▁Once', '▁upon', '▁a', '▁time'].map((p) => vocab[p] as number)];
  const chain = await Chain.open(t, dir, [[0, 2], [2, 5]]);
  let [r] = await chain.run([{ seq: 's', pos: 0, n: prompt.length, tokens: Int32Array.from(prompt) }]);
  const out: number[] = [];
  for (let i = 0; i < 24; i++) {
    const next = argmax(r?.logits ?? []);
    out.push(next);
    [r] = await chain.run([{ seq: 's', pos: prompt.length + i, n: 1, tokens: Int32Array.of(next) }]);
  }
  const ckpt = openCheckpoint(dir);
  const ref = referenceGreedy(ckpt, prompt, 24, []);
  ckpt.close();
  t.same(out, ref.slice(0, 24), 'engine greedy tokens equal the reference greedy tokens');
  const text = out.map((i) => pieces[i] ?? '').join('').replace(/▁/g, ' ');
  t.match(text, /^, there was a little girl named Lily/, `continuation: ${text}`);
});
