// The bench's prompt: deterministic token ids, so `hearth bench` and bench/llama-cpp feed both
// engines the same ids (the compare script imports this file; keep it free of imports).

/** n ids in [0, vocabSize) from a fixed linear congruential generator (glibc's constants). */
export function benchPromptIds(n: number, vocabSize: number, seed = 12345): Int32Array {
  let x = seed;
  return Int32Array.from({ length: n }, () => (x = (x * 1103515245 + 12345) % 2147483648) % vocabSize);
}
