// Greedy text of both MoE families (issue 23) is the reference forward pass's, token for token, in
// 1, 2 and 3 stages (fp32 shard engines chained in process; the NATS path is cluster-moe.test.ts).
import t from 'tap';
import { argmax, openCheckpoint, referenceGreedy } from '../src/model/index.ts';
import { Chain, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

const SPLITS = [[[0, 4]], [[0, 2], [2, 4]], [[0, 1], [1, 3], [3, 4]]] as const;

async function chainGreedy(chain: Chain, prompt: readonly number[], n: number): Promise<number[]> {
  let [r] = await chain.run([{ seq: 'g', pos: 0, n: prompt.length, tokens: Int32Array.from(prompt) }]);
  const out: number[] = [];
  for (let pos = prompt.length; out.length < n; pos++) {
    const next = argmax(r?.logits as Float32Array);
    out.push(next);
    if (out.length === n) break;
    [r] = await chain.run([{ seq: 'g', pos, n: 1, tokens: Int32Array.of(next) }]);
  }
  return out;
}

for (const preset of ['tiny-qwen3-moe', 'tiny-mixtral'] as const) {
  t.test(`${preset}: greedy text equals the reference in 1-3 stages`, async (t) => {
    const dir = await tinyCheckpoint(t, preset);
    const prompt = tokenStream(8, 151936, 77);
    const ckpt = openCheckpoint(dir);
    const want = referenceGreedy(ckpt, prompt, 24, []);
    ckpt.close();
    t.ok(new Set(want).size > 3, `not degenerate: ${want.join(' ')}`);
    for (const split of SPLITS) {
      const chain = await Chain.open(t, dir, split);
      t.same(await chainGreedy(chain, prompt, want.length), want, `split ${JSON.stringify(split)}`);
      await chain.close();
    }
  });
}
