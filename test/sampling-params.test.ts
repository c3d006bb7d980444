import t from 'tap';
import { makeSamplingParams, SAMPLING_DEFAULTS } from '../src/sampling/index.ts';
import { isHearthError } from '../src/errors/index.ts';

function paramOf(fn: () => unknown): string | null | undefined {
  try { fn(); return undefined; } catch (e) { return isHearthError(e, 'HEARTH_ERR_INVALID_REQUEST') ? e.param : undefined; }
}

t.test('defaults', async (t) => {
  const p = makeSamplingParams({});
  t.equal(p.temperature, SAMPLING_DEFAULTS.temperature);
  t.equal(p.topP, 1);
  t.equal(p.topK, 0);
  t.equal(p.topLogprobs, -1);
  t.equal(p.logitBias, null);
  t.ok(Number.isSafeInteger(p.seed), 'a seed is always chosen, so a replay repeats the draws');
  t.ok(Object.isFrozen(p));
  const seeds = new Set(Array.from({ length: 20 }, () => makeSamplingParams().seed));
  t.ok(seeds.size > 15, 'unseeded requests get different seeds');
  t.equal(makeSamplingParams({ seed: 5, temperature: 0 }).seed, 5);
});

t.test('range errors name the OpenAI parameter', async (t) => {
  const cases: [Parameters<typeof makeSamplingParams>[0], string][] = [
    [{ temperature: -0.1 }, 'temperature'], [{ temperature: 2.5 }, 'temperature'], [{ temperature: NaN }, 'temperature'],
    [{ topP: 1.1 }, 'top_p'], [{ topP: -0.1 }, 'top_p'], [{ topK: -1 }, 'top_k'], [{ topK: 1.5 }, 'top_k'],
    [{ minP: 2 }, 'min_p'], [{ repetitionPenalty: 0 }, 'repetition_penalty'],
    [{ presencePenalty: 3 }, 'presence_penalty'], [{ frequencyPenalty: -2.01 }, 'frequency_penalty'],
    [{ topLogprobs: 21 }, 'top_logprobs'], [{ seed: 1.5 }, 'seed'],
    [{ logitBias: { 5: 101 } }, 'logit_bias'], [{ logitBias: { '-3': 1 } as Record<number, number> }, 'logit_bias'],
    [{ logitBias: { abc: 1 } as unknown as Record<number, number> }, 'logit_bias'],
  ];
  for (const [input, param] of cases) t.equal(paramOf(() => makeSamplingParams(input)), param, JSON.stringify(input));
  t.equal(paramOf(() => makeSamplingParams({ logitBias: { 600: 1 } }, { vocabSize: 512 })), 'logit_bias', 'bias on a token outside the vocabulary');
  const many = (n: number): Record<number, number> => Object.fromEntries(Array.from({ length: n }, (_, i) => [i, 1]));
  t.equal(paramOf(() => makeSamplingParams({ logitBias: many(301) })), 'logit_bias', 'more than 300 entries (OpenAI\'s bound)');
  t.equal(Object.keys(makeSamplingParams({ logitBias: many(300) }).logitBias ?? {}).length, 300, '300 entries are fine');
  const err = (() => { try { makeSamplingParams({ temperature: 3 }); return null; } catch (e) { return e as Error; } })();
  t.match(err?.message, /temperature/);
});

t.test('accepted edges', async (t) => {
  t.equal(makeSamplingParams({ topP: 0 }).topP, 0);
  t.equal(makeSamplingParams({ temperature: 2, presencePenalty: -2, frequencyPenalty: 2, topLogprobs: 20 }).topLogprobs, 20);
  t.same(makeSamplingParams({ logitBias: { 3: -100, 4: 100 } }).logitBias, { 3: -100, 4: 100 });
  t.equal(makeSamplingParams({ logitBias: {} }).logitBias, null);
  t.equal(makeSamplingParams({ seed: -(2 ** 50) }).seed, -(2 ** 50));
});
