import { HearthError } from '../errors/index.ts';

export type Range = readonly [number, number];

/** "0:3,3:5" → [[0,3],[3,5]]; must cover [0, numLayers) contiguously. */
export function parseSplit(spec: string, numLayers: number): Range[] {
  const ranges = spec.split(',').map((part) => {
    const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(part);
    if (m === null) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--split: "${part}" is not START:END (e.g. --split 0:3,3:${numLayers})`]);
    return [Number(m[1]), Number(m[2])] as const;
  });
  let next = 0;
  for (const [a, b] of ranges) {
    if (a !== next || b <= a) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--split: ranges must be contiguous, non-empty and start at 0; got ${spec} (expected ${next}:…)`]);
    }
    next = b;
  }
  if (next !== numLayers) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--split: ranges end at ${next} but the model has ${numLayers} layers`]);
  }
  return ranges;
}

/** k stages as even as possible (earlier stages get the remainder: they skip lm_head). */
export function evenSplit(numLayers: number, k: number): Range[] {
  if (!Number.isInteger(k) || k < 1 || k > numLayers) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--stages must be 1..${numLayers} (the model has ${numLayers} layers); got ${k}`]);
  }
  const out: Range[] = [];
  let start = 0;
  for (let i = 0; i < k; i++) {
    const size = Math.floor(numLayers / k) + (i < numLayers % k ? 1 : 0);
    out.push([start, start + size]);
    start += size;
  }
  return out;
}
