// Teacher forcing through shard engines: a text's tokens go in as prompt chunks and every position's
// logits come back (logitRows = the chunk), so models can be compared on the same text position by
// position without generating anything.

import type { ShardEngine } from '../runtime/types.ts';

/** Runs tokens [0, n) through a chain of engines (one stage or several); calls `each` with the
 *  logits rows [k, vocab] of every chunk and the index of its first position. */
export async function teacherForced(
  chain: readonly ShardEngine[],
  tokens: readonly number[],
  chunk: number,
  each: (first: number, logits: Float32Array) => void,
  seq = 'eval',
): Promise<void> {
  for (const e of chain) e.free(seq);
  for (let pos = 0; pos < tokens.length; pos += chunk) {
    const n = Math.min(chunk, tokens.length - pos);
    let hidden: Float32Array | undefined;
    let logits: Float32Array | undefined;
    for (const e of chain) {
      const [r] = await e.run([{ seq, pos, n, tokens: Int32Array.from(tokens.slice(pos, pos + n)), ...(hidden ? { hidden } : {}), ...(e.last ? { logitRows: n } : {}) }]);
      hidden = r?.hidden;
      logits = r?.logits;
    }
    if (logits === undefined) throw new Error('the last engine returned no logits');
    each(pos, logits);
  }
  for (const e of chain) e.free(seq);
}
