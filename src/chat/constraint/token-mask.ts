// Which tokens may come next: fills a 0/1 mask over the vocabulary for a matcher state.
// Three ways, cheapest first: inside a string body every "plain" token is allowed (a precomputed
// set) and only tokens holding `"` or `\` are checked; in free text before a trigger only tokens
// holding the trigger's first byte are checked; everywhere else the vocabulary trie is walked with
// the state, and a byte the grammar rejects prunes its whole subtree (cf. llguidance's token
// trie, https://github.com/guidance-ai/llguidance).

import { TextFrame, canEnd, distance, stepState } from './frames.ts';
import type { Frame, MState } from './frames.ts';
import { PatStrFrame } from './pattern-frame.ts';
import { patternPlainMask } from './pattern-mask.ts';
import type { VocabIndex } from './vocab-index.ts';

/** Whether bytes can follow state and still leave a completion of at most maxDist bytes. */
export function survives(state: MState, bytes: Uint8Array, maxDist: number): boolean {
  let s: MState = state;
  for (let i = 0; i < bytes.length; i++) {
    s = stepState(s, bytes[i]!);
    if (s.length === 0) return false;
  }
  return maxDist === Infinity || distance(s) <= maxDist;
}

/** Per call: which first bytes the state accepts at all (256 single steps beat thousands of walks). */
const firstOk = new Uint8Array(256);

function checkEach(ix: VocabIndex, state: MState, ids: Int32Array, mask: Uint8Array, maxDist: number): void {
  for (let b = 0; b < 256; b++) firstOk[b] = stepState(state, b).length > 0 ? 1 : 0;
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k]!;
    const bytes = ix.bytes[id]!;
    if (firstOk[bytes[0]!] === 1 && survives(state, bytes, maxDist)) mask[id] = 1;
  }
}

// Plain string characters and plain free text never lengthen the way to completion, so the
// fast path need not check maxDist for them.
function fastPath(ix: VocabIndex, state: MState, mask: Uint8Array, maxDist: number): boolean {
  let room = Infinity;
  for (const f of state) {
    const r = f.plainRoom();
    if (r < 0) { room = -1; break; }
    room = Math.min(room, r);
  }
  if (room >= 0) {
    if (room >= ix.maxPlainChars) mask.set(ix.strPlain);
    else {
      const p = ix.strPlain;
      const c = ix.strChars;
      for (let id = 0; id < p.length; id++) if (p[id] === 1 && c[id]! <= room) mask[id] = 1;
    }
    checkEach(ix, state, ix.strSpecial, mask, maxDist);
    return true;
  }
  const only: Frame | undefined = state.length === 1 ? state[0] : undefined;
  const at = only instanceof PatStrFrame ? only.patternAt() : null;
  if (at !== null) {
    let parentRem = 0;
    for (let f = only!.parent; f !== null; f = f.parent) parentRem += f.rem();
    // The string's closing quote is one more byte after its body.
    patternPlainMask(at.t, ix, at.d, at.count, maxDist - parentRem - 1, mask);
    checkEach(ix, state, ix.strSpecial, mask, maxDist);
    return true;
  }
  if (only instanceof TextFrame && only.matched === 0) {
    const split = ix.textSplit(only.triggerByte);
    mask.set(split.plain);
    checkEach(ix, state, split.special, mask, maxDist);
    return true;
  }
  return false;
}

/** Reused per call: states and distances along the current trie path. */
let pathStates: MState[] = [];
let pathDist = new Int32Array(0);

function walk(ix: VocabIndex, state: MState, mask: Uint8Array, closing: boolean, maxDist: number): void {
  if (pathStates.length <= ix.maxDepth) { pathStates = new Array<MState>(ix.maxDepth + 1); pathDist = new Int32Array(ix.maxDepth + 1); }
  pathStates[0] = state;
  pathDist[0] = closing ? distance(state) : 0;
  const { label, depth, end, tok, dup, nodes } = ix;
  let i = 0;
  while (i < nodes) {
    const d = depth[i]!;
    const s = stepState(pathStates[d - 1]!, label[i]!);
    if (s.length === 0) { i = end[i]!; continue; }
    if (closing) {
      // Closing: only bytes on a shortest way to completion, so each token brings it closer.
      const dd = distance(s);
      if (dd !== pathDist[d - 1]! - 1) { i = end[i]!; continue; }
      pathDist[d] = dd;
    }
    pathStates[d] = s;
    const t = tok[i]!;
    if (t >= 0 && (closing || maxDist === Infinity || distance(s) <= maxDist)) {
      mask[t] = 1;
      const more = dup.get(t);
      if (more) for (const x of more) mask[x] = 1;
    }
    i++;
  }
}

/**
 * Fills mask (length vocabSize) with the allowed next tokens; returns how many. `closing`: only
 * tokens on a shortest way to completion. `maxDist`: otherwise, only tokens after which the output
 * can still be completed in that many bytes (so a budget is never overrun by starting something
 * long, like another array item, just before it runs out).
 */
export function fillMask(ix: VocabIndex, state: MState, mask: Uint8Array, closing: boolean, maxDist = Infinity): number {
  mask.fill(0);
  if (state.length > 0) {
    if (closing || !fastPath(ix, state, mask, maxDist)) walk(ix, state, mask, closing, maxDist);
    if (canEnd(state)) for (const e of ix.eos) mask[e] = 1;
  }
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i]!;
  return n;
}
