// `hearth bench` per context: the prompt is fed in prefill chunks, decode follows at the right
// positions (greedy ids equal the reference and an unchunked run), KV grows with the context, and
// the per-op profile splits into each context's prefill and decode. No timing is asserted.
import t from 'tap';
import { benchEngine, benchPromptIds, formatBench } from '../src/runtime/index.ts';
import { reference, tinyCheckpoint } from './helpers/runtime-exact.ts';

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

t.test('bench: contexts in chunks, greedy ids, KV, per-context profile', async (t) => {
  const dir = await tinyCheckpoint(t, 'tiny-qwen2');
  const common = { dir, quant: 'none', stages: 2, contexts: [5, 37], decodeTokens: 3, threads: 1 } as const;
  const seen: number[] = [];
  const r = await benchEngine({ ...common, prefillChunk: 8, profile: true, onContext: (c) => seen.push(c.context) });
  t.same(seen, [5, 37], 'one row per context, in order');
  t.same(r.contexts.map((c) => c.context), [5, 37]);
  const [a, b] = r.contexts;
  if (!a || !b) throw new Error('two rows expected');

  const prompt = [...benchPromptIds(37, 151936)];
  const ref = reference(dir, prompt);
  t.equal(b.greedyIds[0], argmax(ref[36] as Float32Array), 'the token after a 37-token prompt fed in chunks of 8 equals the reference');
  const whole = await benchEngine({ ...common, prefillChunk: 64 });
  t.same(r.contexts.map((c) => c.greedyIds), whole.contexts.map((c) => c.greedyIds), 'chunked and unchunked prefill decode the same tokens');
  t.equal(b.greedyIds.length, 4, 'the prefill token plus one per decode step');

  t.ok(a.kvBytes > 0 && b.kvBytes / a.kvBytes === (37 + 3) / (5 + 3), 'KV in use covers context + decoded positions');
  t.ok(b.weightBytes > 0 && b.weightBytes === r.weightBytes);
  t.ok(b.rssPeakBytes >= b.rssBytes && b.rssBytes > 0);
  t.equal(b.rssPeakOverWeightsKv, b.rssPeakBytes / (b.weightBytes + b.kvBytes));
  t.ok(b.prefillTokS > 0 && b.decodeTokS > 0 && b.ttftMs > 0 && b.prefillCpuMsPerToken > 0 && b.decodeCpuMsPerToken > 0);
  t.ok(r.processPeakRssBytes >= b.rssBytes);

  for (const c of r.contexts) {
    const ops = c.perOp;
    if (!ops) throw new Error('profile expected');
    for (const [phase, list] of [['prefill', ops.prefill], ['decode', ops.decode]] as const) {
      t.ok(list.some((o) => o.op === 'FusedMatMul'), `context ${c.context} ${phase}: attention (FusedMatMul) is in the profile`);
      t.ok(Math.abs(list.reduce((s, o) => s + o.pct, 0) - 100) < 1e-6, `context ${c.context} ${phase}: shares sum to 100 %`);
    }
  }
  t.match(formatBench(r, 123), /^context .*\n5 .*\n37 .*load: first 123 ms/s);
  t.ok(whole.contexts.every((c) => c.perOp === undefined), 'no profile unless asked');
});
