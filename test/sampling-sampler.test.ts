import t from 'tap';
import { GREEDY, makeSamplingParams, sampleToken, selectTop, warpedDistribution, type SamplingParams } from '../src/sampling/index.ts';
import { isHearthError } from '../src/errors/index.ts';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const randomLogits = (r: () => number, n: number, scale = 4): Float32Array => Float32Array.from({ length: n }, () => (r() - 0.5) * 2 * scale);
const P = (o: Parameters<typeof makeSamplingParams>[0]): SamplingParams => makeSamplingParams({ seed: 1, ...o });
const ctx0 = { history: [] as number[], promptLen: 0, pos: 0 };

/** Independent reference: plain loop argmax, lowest id on ties. */
function refArgmax(l: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < l.length; i++) if (l[i]! > l[b]!) b = i;
  return b;
}
/** Independent reference: softmax with a full sort, for expected truncated distributions. */
const orders = new WeakMap<Float32Array, number[]>();
function refDistribution(l: Float32Array, T: number, topK: number, topP: number, minP: number): Map<number, number> {
  let order = orders.get(l);
  if (order === undefined) orders.set(l, order = [...l.keys()].sort((a, b) => l[b]! - l[a]! || a - b));
  const max = l[order[0]!]!;
  let probs = order.map((i) => ({ i, p: Math.exp((l[i]! - max) / T) }));
  if (topK > 0) probs = probs.slice(0, topK);
  let z = probs.reduce((s, x) => s + x.p, 0);
  if (topP < 1) {
    const kept: typeof probs = [];
    let acc = 0;
    for (const x of probs) { if (kept.length > 0 && acc >= topP * z) break; kept.push(x); acc += x.p; }
    probs = kept;
  }
  if (minP > 0) probs = probs.filter((x) => x.p >= minP * probs[0]!.p);
  z = probs.reduce((s, x) => s + x.p, 0);
  return new Map(probs.map((x) => [x.i, x.p / z]));
}

t.test('greedy is the argmax, ties to the lowest id, and does not touch the logits', async (t) => {
  const r = rng(1);
  let wrong = 0;
  let touched = 0;
  for (let n = 0; n < 200; n++) {
    const l = randomLogits(r, 1 + Math.floor(r() * 3000));
    const copy = l.slice();
    if (sampleToken(l, GREEDY, ctx0).token !== refArgmax(l)) wrong++;
    sampleToken(l, { ...GREEDY, repetitionPenalty: 1.3, logitBias: { 0: 5 }, topLogprobs: 2 }, { history: [0, 1, 2], promptLen: 1, pos: 3 });
    if (!l.every((v, i) => v === copy[i])) touched++;
  }
  t.equal(wrong, 0, '200 random rows');
  t.equal(touched, 0, 'logits left as they were');
  const tie = Float32Array.from([0, 3, 1, 3, 3]);
  t.equal(sampleToken(tie, GREEDY, ctx0).token, 1);
  t.equal(sampleToken(tie, P({ temperature: 0.7, topK: 1 }), ctx0).token, 1, 'top-k 1 takes the lowest tied id');
});

t.test('top-k=1 and a tiny top-p are greedy whatever the seed', async (t) => {
  const r = rng(2);
  let bad = 0;
  for (let n = 0; n < 300; n++) {
    const l = randomLogits(r, 50 + Math.floor(r() * 2000));
    const g = refArgmax(l);
    const ctx = { history: [], promptLen: 0, pos: n };
    if (sampleToken(l, P({ temperature: 1.5, topK: 1, seed: n }), ctx).token !== g) bad++;
    if (sampleToken(l, P({ temperature: 1.5, topP: 1e-9, seed: n }), ctx).token !== g) bad++;
    if (sampleToken(l, P({ temperature: 1.5, topK: 40, topP: 1e-9, seed: n }), ctx).token !== g) bad++;
  }
  t.equal(bad, 0);
});

t.test('seed determinism: (seed, pos) fixes the draw; seeds differ on a flat distribution', async (t) => {
  const flat = new Float32Array(1000);
  const p = P({ temperature: 1, seed: 42 });
  const first = Array.from({ length: 50 }, (_, pos) => sampleToken(flat, p, { history: [], promptLen: 0, pos }).token);
  // Interleave unrelated draws: no hidden generator state may leak between calls.
  for (let i = 0; i < 20; i++) sampleToken(flat, P({ temperature: 1, seed: 7 }), { history: [], promptLen: 0, pos: i });
  const again = Array.from({ length: 50 }, (_, pos) => sampleToken(flat, p, { history: [], promptLen: 0, pos }).token);
  t.same(again, first, 'replay draws the same tokens');
  t.ok(new Set(first).size > 40, 'positions differ');
  const bySeed = Array.from({ length: 100 }, (_, seed) => sampleToken(flat, P({ temperature: 1, seed }), { history: [], promptLen: 0, pos: 5 }).token);
  t.ok(new Set(bySeed).size > 80, `different seeds differ (${new Set(bySeed).size}/100 distinct)`);
  const big = [2 ** 40, 2 ** 40 + 1, -1, -(2 ** 40)].map((seed) => sampleToken(flat, P({ temperature: 1, seed }), { history: [], promptLen: 0, pos: 5 }).token);
  t.equal(new Set(big).size, 4, 'high seed bits and negative seeds matter');
});

t.test('draws follow the truncated softmax (chi-square against an independent computation)', async (t) => {
  const r = rng(3);
  const cases: [number, number, number, number][] = [[1, 0, 1, 0], [0.5, 0, 1, 0], [1.3, 3, 1, 0], [1, 0, 0.8, 0], [0.8, 5, 0.9, 0], [1, 0, 1, 0.2], [1, 0, 0.95, 0.1], [2, 4, 1, 0.3]];
  for (const [T, k, tp, mp] of cases) {
    const l = randomLogits(r, 8, 1.5);
    const want = refDistribution(l, T, k, tp, mp);
    const draws = 20000;
    const seen = new Map<number, number>();
    const p = P({ temperature: T, topK: k, topP: tp, minP: mp, seed: 99 });
    for (let pos = 0; pos < draws; pos++) {
      const tok = sampleToken(l, p, { history: [], promptLen: 0, pos }).token;
      seen.set(tok, (seen.get(tok) ?? 0) + 1);
    }
    const outside = [...seen.keys()].filter((k2) => !want.has(k2));
    t.same(outside, [], `T=${T} k=${k} p=${tp} minp=${mp}: nothing outside the kept set`);
    let chi = 0;
    for (const [id, prob] of want) chi += ((seen.get(id) ?? 0) - prob * draws) ** 2 / (prob * draws);
    // 7 degrees of freedom at most: p=0.001 critical value is 24.3.
    t.ok(chi < 24.3, `T=${T} k=${k} p=${tp} minp=${mp}: chi² ${chi.toFixed(2)}`);
  }
});

t.test('logit_bias bans and forces', async (t) => {
  const r = rng(4);
  for (let n = 0; n < 50; n++) {
    const l = randomLogits(r, 500);
    const g = refArgmax(l);
    const banned = P({ temperature: 1, logitBias: { [g]: -100 }, seed: n });
    t.not(sampleToken(l, { ...GREEDY, logitBias: { [g]: -100 } }, ctx0).token, g);
    for (let pos = 0; pos < 20; pos++) if (sampleToken(l, banned, { history: [], promptLen: 0, pos }).token === g) t.fail('banned token drawn');
    const forced = P({ temperature: 1, logitBias: { 7: 100 }, seed: n });
    t.equal(sampleToken(l, forced, { history: [], promptLen: 0, pos: n }).token, 7);
  }
});

t.test('penalties change the argmax when they should', async (t) => {
  // Repetition (HF): positive logits divided, negative multiplied; prompt tokens count too.
  t.equal(sampleToken(Float32Array.from([2, 1.9]), { ...GREEDY, repetitionPenalty: 1.2 }, { history: [0], promptLen: 1, pos: 1 }).token, 1);
  t.equal(sampleToken(Float32Array.from([2, 1.5]), { ...GREEDY, repetitionPenalty: 1.2 }, { history: [0], promptLen: 1, pos: 1 }).token, 0, '2/1.2 still beats 1.5');
  t.equal(sampleToken(Float32Array.from([-1, -1.1]), { ...GREEDY, repetitionPenalty: 1.2 }, { history: [0, 0, 0], promptLen: 3, pos: 3 }).token, 1, 'negative logit multiplied, once per distinct token');
  // Presence/frequency (OpenAI): generated tokens only.
  const l = Float32Array.from([1, 0.8]);
  t.equal(sampleToken(l, { ...GREEDY, presencePenalty: 0.5 }, { history: [0], promptLen: 1, pos: 1 }).token, 0, 'prompt tokens are not penalised');
  t.equal(sampleToken(l, { ...GREEDY, presencePenalty: 0.5 }, { history: [0], promptLen: 0, pos: 1 }).token, 1, 'generated token penalised');
  t.equal(sampleToken(l, { ...GREEDY, frequencyPenalty: 0.1 }, { history: Int32Array.from([0, 0]), promptLen: 0, pos: 2 }).token, 0, '2 × 0.1 = 0.2 is a tie: lowest id');
  t.equal(sampleToken(l, { ...GREEDY, frequencyPenalty: 0.1 }, { history: Int32Array.from([0, 0, 0]), promptLen: 0, pos: 3 }).token, 1, '3 × 0.1 beats the margin');
  t.equal(sampleToken(l, { ...GREEDY, presencePenalty: -0.5 }, { history: [1], promptLen: 0, pos: 1 }).token, 1, 'negative presence encourages');
});

t.test('logprobs: log-softmax before temperature, top-N sorted, sums to 1 in prob space', async (t) => {
  const r = rng(5);
  for (let n = 0; n < 30; n++) {
    const l = randomLogits(r, 12);
    const p = P({ temperature: 0.3 + r(), topLogprobs: 12, seed: n, frequencyPenalty: 0.5 });
    const hist = [3, 3, 5];
    const s = sampleToken(l, p, { history: hist, promptLen: 1, pos: n });
    const adj = Float64Array.from(l);
    adj[3] = adj[3]! - 0.5; adj[5] = adj[5]! - 0.5; // generated tokens: history[1..] = [3, 5]
    const max = Math.max(...adj);
    const lse = max + Math.log(adj.reduce((z, v) => z + Math.exp(v - max), 0));
    t.ok(Math.abs(s.logprob! - (adj[s.token]! - lse)) < 1e-5, 'chosen token logprob');
    const top = s.top!;
    t.equal(top.length, 12);
    t.ok(Math.abs(top.reduce((z, x) => z + Math.exp(x.logprob), 0) - 1) < 1e-5, 'sums to 1');
    t.ok(top.every((x, i) => i === 0 || x.logprob <= top[i - 1]!.logprob), 'sorted');
  }
  const l = randomLogits(r, 100);
  const s = sampleToken(l, { ...GREEDY, topLogprobs: 3 }, ctx0);
  t.equal(s.top!.length, 3);
  t.equal(s.top![0]!.token, s.token, 'greedy token is the top alternative');
  t.same(sampleToken(l, { ...GREEDY, topLogprobs: 0 }, ctx0).top, []);
  t.equal(sampleToken(l, GREEDY, ctx0).logprob, undefined, 'no logprobs unless asked');
});

t.test('mask, -inf and NaN', async (t) => {
  const l = Float32Array.from([5, NaN, 1, -Infinity, 2]);
  t.equal(sampleToken(l, GREEDY, ctx0).token, 0);
  const allowed = Uint8Array.from([0, 1, 0, 1, 1]);
  t.equal(sampleToken(l, GREEDY, { ...ctx0, allowed }).token, 4);
  for (let pos = 0; pos < 100; pos++) t.equal(sampleToken(l, P({ temperature: 2, seed: pos }), { ...ctx0, pos, allowed }).token, 4);
  const err = (() => { try { sampleToken(Float32Array.from([NaN, -Infinity]), GREEDY, ctx0); return null; } catch (e) { return e; } })();
  t.ok(isHearthError(err, 'HEARTH_ERR_ENGINE'));
});

t.test('selectTop equals a full sort prefix', async (t) => {
  const r = rng(6);
  for (let n = 0; n < 100; n++) {
    const l = Float32Array.from({ length: 1 + Math.floor(r() * 500) }, () => Math.round((r() - 0.5) * 20)); // many ties
    const m = Math.floor(r() * 60);
    const want = [...l.keys()].sort((a, b) => l[b]! - l[a]! || a - b).slice(0, m);
    t.same([...selectTop(l, m)], want);
  }
});

t.test('Qwen-sized vocabulary (151936): every path agrees with the reference', async (t) => {
  const r = rng(7);
  const l = randomLogits(r, 151936, 8);
  t.equal(sampleToken(l, GREEDY, ctx0).token, refArgmax(l));
  for (const o of [{ topK: 50 }, { topP: 0.9 }, { topP: 0.3 }, { minP: 0.05 }, { topK: 40, topP: 0.95, minP: 0.02 }, { topP: 0.7, minP: 0.01 }]) {
    const p = P({ temperature: 0.8, ...o });
    const want = refDistribution(l, 0.8, o.topK ?? 0, o.topP ?? 1, o.minP ?? 0);
    const got = warpedDistribution(l, p, ctx0);
    t.ok(got.size === want.size && [...want.keys()].every((id) => got.has(id)), `${JSON.stringify(o)}: kept set (${want.size} tokens) equals a full sort's`);
    let maxDiff = 0;
    for (const [id, pr] of want) maxDiff = Math.max(maxDiff, Math.abs((got.get(id) ?? 0) - pr));
    t.ok(maxDiff < 1e-9, `${JSON.stringify(o)}: probabilities match (max diff ${maxDiff.toExponential(1)})`);
    const t0 = performance.now();
    const toks = Array.from({ length: 20 }, (_, pos) => sampleToken(l, p, { history: [], promptLen: 0, pos }).token);
    const ms = (performance.now() - t0) / 20;
    t.ok(toks.every((x) => want.has(x)), `${JSON.stringify(o)}: draws within the kept set (${ms.toFixed(2)} ms/token)`);
  }
});

t.test('warped distribution equals a full-sort reference on random small vocabularies', async (t) => {
  const r = rng(8);
  let bad = 0;
  for (let n = 0; n < 300; n++) {
    const V = 2 + Math.floor(r() * 400);
    const l = Float32Array.from({ length: V }, () => Math.round((r() - 0.5) * 12 * 4) / 4); // ties on purpose
    const o = { temperature: 0.2 + r() * 1.8, topK: r() < 0.4 ? Math.floor(r() * 20) : 0, topP: r() < 0.6 ? r() : 1, minP: r() < 0.4 ? r() * 0.5 : 0 };
    const want = refDistribution(l, o.temperature, o.topK, o.topP, o.minP);
    const got = warpedDistribution(l, P(o), ctx0);
    const same = got.size === want.size && [...want].every(([id, pr]) => Math.abs((got.get(id) ?? -1) - pr) < 1e-9);
    if (!same && bad++ < 3) t.fail(`case ${n} ${JSON.stringify(o)}: got ${got.size} tokens, want ${want.size}`);
  }
  t.equal(bad, 0, '300 random cases');
});
