export type { SamplingParams, SampledToken, TokenLogprob } from './types.ts';
export { GREEDY } from './types.ts';
export { sampleToken, warpedDistribution, type SampleContext } from './sampler.ts';
export { makeSamplingParams, SAMPLING_DEFAULTS, MAX_TOP_LOGPROBS, MAX_LOGIT_BIAS, type SamplingInput } from './params.ts';
export { uniformAt } from './prng.ts';
export { selectTop, argmax } from './top-select.ts';
