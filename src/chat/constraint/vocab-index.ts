// The vocabulary as the constraint walks it: a byte trie laid out in preorder (node i's subtree
// is i+1 … end[i]-1, so a rejected byte skips its whole subtree with one assignment), plus the
// precomputed "plain string" token set that lets most string positions skip the walk entirely.
// Built once per tokenizer and cached.

import type { Tokenizer } from '../../tokenizer/types.ts';

/** The part of a Tokenizer the constraint needs. */
export type ByteVocab = Pick<Tokenizer, 'vocabSize' | 'eosTokenIds' | 'specialIds' | 'tokenBytes'>;

export interface VocabIndex {
  readonly vocabSize: number;
  readonly eos: readonly number[];
  /** Bytes of every token the grammar may use (null: special, EOS or empty). */
  readonly bytes: readonly (Uint8Array | null)[];
  readonly label: Uint8Array;
  readonly depth: Uint16Array;
  readonly end: Int32Array;
  readonly tok: Int32Array;
  /** Tokens whose bytes equal another's (the trie node holds the first). */
  readonly dup: ReadonlyMap<number, readonly number[]>;
  readonly nodes: number;
  readonly maxDepth: number;
  /** 1: every byte is an ordinary string character and the UTF-8 is well formed so far. */
  readonly strPlain: Uint8Array;
  /** Characters a plain token adds to a string (for maxLength). */
  readonly strChars: Uint16Array;
  readonly maxPlainChars: number;
  /** Tokens containing `"` or `\`: checked one by one against the state. */
  readonly strSpecial: Int32Array;
  /** Tokens that do not / do contain byte b (free text before a trigger), built on demand. */
  textSplit(b: number): { readonly plain: Uint8Array; readonly special: Int32Array };
}

const cache = new WeakMap<object, VocabIndex>();

export function vocabIndex(vocab: ByteVocab): VocabIndex {
  let v = cache.get(vocab);
  if (!v) {
    v = build(vocab);
    cache.set(vocab, v);
  }
  return v;
}

/** Does a token, started with no UTF-8 character pending, stay a well-formed string body? */
function plainString(b: Uint8Array): number {
  let need = 0;
  let lo = 0x80;
  let hi = 0xbf;
  let chars = 0;
  for (const x of b) {
    if (need > 0) {
      if (x < lo || x > hi) return -1;
      need--;
      lo = 0x80; hi = 0xbf;
      continue;
    }
    if (x === 0x22 || x === 0x5c || x < 0x20) return -1;
    chars++;
    if (x < 0x80) continue;
    if (x >= 0xc2 && x <= 0xdf) need = 1;
    else if (x === 0xe0) { need = 2; lo = 0xa0; }
    else if ((x >= 0xe1 && x <= 0xec) || x === 0xee || x === 0xef) need = 2;
    else if (x === 0xed) { need = 2; hi = 0x9f; }
    else if (x === 0xf0) { need = 3; lo = 0x90; }
    else if (x >= 0xf1 && x <= 0xf3) need = 3;
    else if (x === 0xf4) { need = 3; hi = 0x8f; }
    else return -1;
  }
  return chars;
}

function build(vocab: ByteVocab): VocabIndex {
  const n = vocab.vocabSize;
  const banned = new Set<number>([...vocab.eosTokenIds, ...vocab.specialIds]);
  const bytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(n).fill(null);
  const keyed: { key: string; id: number }[] = [];
  let total = 0;
  for (let id = 0; id < n; id++) {
    if (banned.has(id)) continue;
    const b = vocab.tokenBytes(id);
    if (b.length === 0) continue;
    bytes[id] = b;
    total += b.length;
    // latin1 keys sort in byte order with the native string comparison.
    keyed.push({ key: String.fromCharCode(...b), id });
  }
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id - b.id));

  const label = new Uint8Array(total);
  const depth = new Uint16Array(total);
  const end = new Int32Array(total);
  const tok = new Int32Array(total).fill(-1);
  const dup = new Map<number, number[]>();
  const path: number[] = [];
  let nodes = 0;
  let prev = '';
  let maxDepth = 0;
  for (const { key, id } of keyed) {
    let cp = 0;
    while (cp < key.length && cp < prev.length && key.charCodeAt(cp) === prev.charCodeAt(cp)) cp++;
    for (let d = prev.length; d > cp; d--) end[path[d]!] = nodes;
    for (let d = cp + 1; d <= key.length; d++) {
      label[nodes] = key.charCodeAt(d - 1);
      depth[nodes] = d;
      path[d] = nodes++;
    }
    const at = path[key.length]!;
    if (tok[at] === -1) tok[at] = id;
    else {
      const first = tok[at]!;
      if (!dup.has(first)) dup.set(first, []);
      dup.get(first)!.push(id);
    }
    prev = key;
    if (key.length > maxDepth) maxDepth = key.length;
  }
  for (let d = prev.length; d > 0; d--) end[path[d]!] = nodes;

  const strPlain = new Uint8Array(n);
  const strChars = new Uint16Array(n);
  const special: number[] = [];
  let maxPlainChars = 0;
  for (let id = 0; id < n; id++) {
    const b = bytes[id];
    if (!b) continue;
    const chars = plainString(b);
    if (chars >= 0) {
      strPlain[id] = 1;
      strChars[id] = chars;
      if (chars > maxPlainChars) maxPlainChars = chars;
    } else if (b.includes(0x22) || b.includes(0x5c)) special.push(id);
  }

  const splits = new Map<number, { plain: Uint8Array; special: Int32Array }>();
  return {
    vocabSize: n, eos: [...vocab.eosTokenIds], bytes,
    label: label.subarray(0, nodes), depth: depth.subarray(0, nodes), end: end.subarray(0, nodes), tok: tok.subarray(0, nodes),
    dup, nodes, maxDepth, strPlain, strChars, maxPlainChars, strSpecial: Int32Array.from(special),
    textSplit(byte: number) {
      let s = splits.get(byte);
      if (!s) {
        const plain = new Uint8Array(n);
        const sp: number[] = [];
        for (let id = 0; id < n; id++) {
          const b = bytes[id];
          if (!b) continue;
          if (b.includes(byte)) sp.push(id);
          else plain[id] = 1;
        }
        s = { plain, special: Int32Array.from(sp) };
        splits.set(byte, s);
      }
      return s;
    },
  };
}
