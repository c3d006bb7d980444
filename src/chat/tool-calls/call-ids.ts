import { randomInt } from 'node:crypto';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** mulberry32: tiny, fast, good enough to spell ids (not for secrets). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `call_<24 alnum>` for the index-th call of a response. Deterministic in (seed, index) so a
 * streamed and a non-streamed run with the same seed name their calls identically.
 */
export function toolCallId(seed: number, index: number): string {
  const rnd = mulberry32(Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
  let s = 'call_';
  for (let i = 0; i < 24; i++) s += ALNUM[Math.floor(rnd() * ALNUM.length)];
  return s;
}

/** A seed for runs that gave none. */
export function randomIdSeed(): number {
  return randomInt(0, 2 ** 31);
}
