// The random draw for one position is a pure function of (seed, pos): no generator state travels
// with a sequence, so a replay on a new plan (or on another node) draws exactly what the first run drew.

/** MurmurHash3's 32-bit finalizer (Appleby, smhasher): full avalanche on 32 bits. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TWO_32 = 4294967296;

/** A uniform double in [0, 1) for (seed, pos); seed is any safe integer (negative too). */
export function uniformAt(seed: number, pos: number): number {
  // Split the seed into 32-bit halves without BigInt (floor division keeps negatives distinct).
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_32) >>> 0;
  let h = fmix32(lo ^ 0x9e3779b9);
  h = fmix32((h ^ hi) + 0x7f4a7c15);
  h = fmix32((h ^ (pos >>> 0)) + 0x165667b1);
  h = fmix32(h ^ (Math.floor(pos / TWO_32) >>> 0));
  const a = fmix32(h ^ 0x27d4eb2f) >>> 5; // 27 bits
  const b = fmix32(h ^ 0x94d049bb) >>> 6; // 26 bits
  return (a * 67108864 + b) / 9007199254740992; // 53 random bits / 2^53
}
