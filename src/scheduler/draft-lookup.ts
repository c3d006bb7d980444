// Prompt lookup drafts (Saxena 2023, "Prompt Lookup Decoding"; HF transformers'
// PromptLookupCandidateGenerator): the last n tokens of the sequence are searched for earlier in the
// prompt and the text so far, and the tokens that followed that earlier occurrence are the draft.
// Agents, code edits and RAG answers repeat their inputs, and a model that copies costs no drafting
// model at all. The longest n (down to minNgram) that matches wins; among its matches the most
// recent, since the text being copied is usually the one just seen.

/**
 * Up to `max` draft tokens continuing tokens[0, total): the tokens after the most recent earlier
 * occurrence of the longest suffix of length maxNgram..minNgram. Empty when nothing matches.
 */
export function lookupDraft(tokens: Int32Array, total: number, max: number, maxNgram = 3, minNgram = 1): number[] {
  if (max <= 0) return [];
  for (let n = Math.min(maxNgram, total - 1); n >= minNgram; n--) {
    const tail = total - n;
    // Candidate starts s < tail, latest first; a match must leave at least one token after it.
    for (let s = tail - 1; s >= 0; s--) {
      let k = 0;
      while (k < n && tokens[s + k] === tokens[tail + k]) k++;
      if (k < n) continue;
      const from = s + n;
      const end = Math.min(total, from + max);
      if (end <= from) continue;
      return Array.from(tokens.subarray(from, end));
    }
  }
  return [];
}
