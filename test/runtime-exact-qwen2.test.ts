// Shard graphs of a tiny Qwen2 (q/k/v bias, tied embeddings, GroupQueryAttention path) equal the
// reference forward pass for 1, 2 and 3 uneven stages, chunked prefill and a ragged decode batch.
import t from 'tap';
import { Chain, exactRun, reference, tinyCheckpoint, tokenStream } from './helpers/runtime-exact.ts';

const SPLITS = [[[0, 4]], [[0, 2], [2, 4]], [[0, 1], [1, 3], [3, 4]]] as const;

t.test('tiny-qwen2: logits equal the reference through prefill and batched decode', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const a = tokenStream(40, 151936, 11);
  const b = tokenStream(31, 151936, 12);
  const refA = reference(dir, a);
  const refB = reference(dir, b);
  for (const split of SPLITS) {
    const chain = await Chain.open(t, dir, split);
    t.equal(chain.engines[0]?.info.attention, 'gqa', 'head_dim 16 takes the GroupQueryAttention path');
    const r = await exactRun(chain, { a, aPrompt: 16, b, bPrompt: 7, chunk: split.length === 2 ? 5 : 16 }, refA, refB);
    t.ok(r.maxDiff <= 1e-4, `split ${JSON.stringify(split)}: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
    t.equal(r.compared, (split.length === 2 ? 4 : 1) + 1 + 48);
    await chain.close();
  }
  // The lm_head in row slices (as a 0.5B vocabulary is by default): a tied head over the
  // embedding's bytes, split unevenly, still equals the reference.
  const sliced = await Chain.open(t, dir, [[0, 4]], 'none', { headSliceRows: 50000 });
  const r = await exactRun(sliced, { a, aPrompt: 16, b, bPrompt: 7, chunk: 16 }, refA, refB);
  t.ok(r.maxDiff <= 1e-4, `sliced lm_head: max |diff| ${r.maxDiff.toExponential(2)} over ${r.compared} logit vectors`);
});
