// GPT-2's byte↔unicode table (openai/gpt-2 encoder.py `bytes_to_unicode`): byte-level BPE vocabularies
// spell every byte as one printable code point, so a token string maps back to its exact bytes.

const UNICODE_TO_BYTE = new Map<number, number>();
const BYTE_TO_UNICODE: number[] = new Array<number>(256);

{
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const cp = printable(b) ? b : 256 + extra++;
    BYTE_TO_UNICODE[b] = cp;
    UNICODE_TO_BYTE.set(cp, b);
  }
}

/** Bytes of a byte-level token string; null when a code point is outside the table (not a byte-level piece). */
export function byteLevelBytes(piece: string): Uint8Array | null {
  const out = new Uint8Array(piece.length);
  let n = 0;
  for (const ch of piece) {
    const b = UNICODE_TO_BYTE.get(ch.codePointAt(0) ?? -1);
    if (b === undefined) return null;
    out[n++] = b;
  }
  return n === out.length ? out : out.slice(0, n);
}

/** The byte-level spelling of raw bytes (inverse of byteLevelBytes). */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCodePoint(BYTE_TO_UNICODE[b] ?? 0);
  return s;
}
