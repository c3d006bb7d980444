// Incremental detokenization. Text deltas are produced per token in O(token) time (no re-decoding of
// the sequence), and a UTF-8 character split across tokens is held back until it is complete.
//
// Exactness: the concatenation of every push() plus flush() equals the library's decode() of the same
// ids. That works because the byte-level and SentencePiece plans replay what the library's decoders do
// (see decoder-plan.ts), and the library decodes byte runs with WHATWG TextDecoder, whose streaming
// mode ({stream:true}) is specified to give the same output as one decode of the whole run.
import type { IncrementalDecoder } from './types.ts';
import { fallbackByte, type DecoderPlan } from './decoder-plan.ts';

/** What a decoder needs to know about a loaded tokenizer. */
export interface DecoderSource {
  readonly plan: DecoderPlan;
  /** Token string per id (added tokens included); undefined for holes and out-of-range ids. */
  piece(id: number): string | undefined;
  /** Contents the library drops under skip_special_tokens. */
  readonly specialContents: ReadonlySet<string>;
  /** Contents of every added token (the byte-level decoder emits them literally). */
  readonly addedContents: ReadonlySet<string>;
  /** Byte-level bytes of a (non-added) token, cached. */
  byteLevel(id: number): Uint8Array;
  /** The library's decode (skip flag honoured, no clean-up), for the generic plan. */
  decodeIds(ids: readonly number[], skipSpecialTokens: boolean): string;
}

export interface DecoderOptions {
  readonly skipSpecialTokens?: boolean;
  /**
   * The tokens continue earlier text (a prompt): SentencePiece decoders strip the leading space of a
   * text's first word, which is right for a whole text but wrong for a continuation (" there" after
   * "Once upon a time"). true keeps that space; the result then equals decode() of the ids with
   * the leading strip undone.
   */
  readonly continuation?: boolean;
}

export function createIncrementalDecoder(src: DecoderSource, opts: DecoderOptions = {}): IncrementalDecoder {
  const skip = opts.skipSpecialTokens ?? false;
  const plan = src.plan;
  if (plan.kind === 'byte-level') return byteLevelDecoder(src, skip);
  if (plan.kind === 'pieces') return piecesDecoder(src, plan, skip, opts.continuation ?? false);
  return windowedDecoder(src, skip);
}

function byteLevelDecoder(src: DecoderSource, skip: boolean): IncrementalDecoder {
  // The library's ByteLevel decoder uses ignoreBOM:true; each run between added tokens is one decode.
  const td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  return {
    push(id) {
      const p = src.piece(id);
      if (p === undefined || (skip && src.specialContents.has(p))) return '';
      if (src.addedContents.has(p)) return td.decode() + p;
      return td.decode(src.byteLevel(id), { stream: true });
    },
    flush() {
      return td.decode();
    },
  };
}

function piecesDecoder(src: DecoderSource, plan: Extract<DecoderPlan, { kind: 'pieces' }>, skip: boolean, continuation: boolean): IncrementalDecoder {
  // The library's ByteFallback uses a default TextDecoder (ignoreBOM:false), one decode per byte run.
  const td = new TextDecoder();
  const one = new Uint8Array(1);
  let first = !continuation;
  let inRun = false;
  let stripLeft = plan.strip === null || continuation ? 0 : plan.strip.start;
  const stripChar = plan.strip?.content ?? '';

  const strip = (text: string): string => {
    if (stripLeft === 0 || text.length === 0) return text;
    let i = 0;
    while (stripLeft > 0 && i < text.length && text[i] === stripChar) { i++; stripLeft--; }
    // A character other than the stripped one ends the leading run for good.
    if (i < text.length) stripLeft = 0;
    return text.slice(i);
  };

  return {
    push(id) {
      const raw = src.piece(id);
      if (raw === undefined || (skip && src.specialContents.has(raw))) return '';
      let s = raw;
      for (const m of plan.maps) s = m(s, first);
      first = false;
      const b = plan.byteFallback ? fallbackByte(s) : null;
      if (b !== null) {
        one[0] = b;
        inRun = true;
        return strip(td.decode(one, { stream: true }));
      }
      const head = inRun ? td.decode() : '';
      inRun = false;
      return strip(head + s);
    },
    flush() {
      if (!inRun) return '';
      inRun = false;
      return strip(td.decode());
    },
  };
}

/**
 * Text-generation-inference's prefix/read-offset scheme (router/src/infer decode_token): re-decode a
 * short window and emit the growth once it does not end in U+FFFD. O(window) per token.
 */
function windowedDecoder(src: DecoderSource, skip: boolean): IncrementalDecoder {
  const ids: number[] = [];
  let prefix = 0;
  let read = 0;
  return {
    push(id) {
      ids.push(id);
      const before = src.decodeIds(ids.slice(prefix, read), skip);
      const after = src.decodeIds(ids.slice(prefix), skip);
      if (after.length > before.length && !after.endsWith('\uFFFD')) {
        prefix = read;
        read = ids.length;
        return after.slice(before.length);
      }
      return '';
    },
    flush() {
      const before = src.decodeIds(ids.slice(prefix, read), skip);
      const after = src.decodeIds(ids.slice(prefix), skip);
      prefix = read = ids.length;
      return after.slice(before.length);
    },
  };
}
