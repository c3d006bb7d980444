// Shard graphs of a tiny Qwen3 (q_norm/k_norm before RoPE, tied; GroupQueryAttention path and the plain-op path) equal the reference forward pass for 1, 2 and 3 uneven stages,
// through chunked prefill and a ragged two-sequence decode batch.
import t from 'tap';
import { Chain, exactRun, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

const SPLITS = [[[0, 4]], [[0, 2], [2, 4]], [[0, 1], [1, 3], [3, 4]]] as const;

t.test('tiny-qwen3: logits equal the reference through prefill and batched decode', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen3');
  const a = tokenStream(40, 151936, 21);
  const b = tokenStream(33, 151936, 22);
  const refA = reference(dir, a);
  const refB = reference(dir, b);
  for (const split of SPLITS) {
    const chain = await Chain.open(t, dir, split);
    t.equal(chain.engines[0]?.info.attention, 'fused', 'the fused attention path is the default');
    const r = await exactRun(chain, { a, aPrompt: 16, b, bPrompt: 9, chunk: split.length === 2 ? 6 : 16 }, refA, refB);
    t.ok(r.maxDiff <= 1e-4, `split ${JSON.stringify(split)}: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
    await chain.close();
  }
  // The plain-op attention (what head sizes GQA can't take use) on the same model, split in two.
  const plain = await Chain.open(t, dir, [[0, 3], [3, 4]], 'none', { attention: 'plain' });
  t.equal(plain.engines[0]?.info.attention, 'plain');
  const r = await exactRun(plain, { a, aPrompt: 16, b, bPrompt: 9, chunk: 7 }, refA, refB);
  t.ok(r.maxDiff <= 1e-4, `plain path: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
});
