// Classifies tokenizer.json's `decoder` into a plan the incremental decoder can stream exactly.
// The plans mirror what @huggingface/tokenizers' own decoders do (src/core/decoder/*.ts), so that
// push()…flush() concatenates to exactly what the library's decode() returns for the same ids.

/** A per-token string rewrite (Replace with a String pattern, Metaspace). `first` = first token in the chain. */
export type PieceMap = (s: string, first: boolean) => string;

export type DecoderPlan =
  /** ByteLevel: non-added tokens are byte-level spellings; added tokens are literal text that ends a byte run. */
  | { readonly kind: 'byte-level' }
  /**
   * SentencePiece style (Llama 2, Mistral, TinyStories): per-token maps, optional ByteFallback (runs of
   * <0xNN> tokens decoded together), optional Fuse + Strip of leading `content` chars of the whole text.
   */
  | { readonly kind: 'pieces'; readonly maps: readonly PieceMap[]; readonly byteFallback: boolean; readonly strip: { readonly content: string; readonly start: number } | null }
  /** Anything else: windowed re-decode through the library (exact except in exotic corner cases). */
  | { readonly kind: 'generic' };

interface DecoderConfig { readonly type?: string; readonly [k: string]: unknown }

const GENERIC: DecoderPlan = { kind: 'generic' };

export function planDecoder(config: unknown): DecoderPlan {
  if (config === null || typeof config !== 'object') return GENERIC;
  const c = config as DecoderConfig;
  if (c.type === 'ByteLevel') return { kind: 'byte-level' };
  const steps: DecoderConfig[] = c.type === 'Sequence' && Array.isArray(c['decoders']) ? (c['decoders'] as DecoderConfig[]) : [c];
  if (steps.length === 1 && steps[0]?.type === 'ByteLevel') return { kind: 'byte-level' };

  const maps: PieceMap[] = [];
  let byteFallback = false;
  let fused = false;
  let strip: { content: string; start: number } | null = null;
  for (const step of steps) {
    // Order matters: maps only before ByteFallback/Fuse (they then see single tokens, as in the library);
    // Strip only after Fuse (then it trims the start of the whole text once).
    if (strip !== null) return GENERIC;
    switch (step.type) {
      case 'Replace': {
        const pattern = step['pattern'] as { String?: unknown } | undefined;
        if (byteFallback || fused || typeof pattern?.String !== 'string') return GENERIC;
        const from = pattern.String;
        const to = typeof step['content'] === 'string' ? step['content'] : '';
        maps.push((s) => s.replaceAll(from, to));
        break;
      }
      case 'Metaspace': {
        if (byteFallback || fused) return GENERIC;
        const rep = typeof step['replacement'] === 'string' ? step['replacement'] : '\u2581';
        maps.push((s, first) => {
          const r = s.replaceAll(rep, ' ');
          return first && r.startsWith(' ') ? r.slice(1) : r;
        });
        break;
      }
      case 'ByteFallback':
        if (byteFallback || fused) return GENERIC;
        byteFallback = true;
        break;
      case 'Fuse':
        fused = true;
        break;
      case 'Strip': {
        const content = typeof step['content'] === 'string' ? step['content'] : '';
        const start = typeof step['start'] === 'number' ? step['start'] : 0;
        const stop = typeof step['stop'] === 'number' ? step['stop'] : 0;
        if (!fused || stop !== 0 || content.length !== 1) return GENERIC;
        strip = { content, start };
        break;
      }
      default:
        return GENERIC;
    }
  }
  return { kind: 'pieces', maps, byteFallback, strip };
}

/** "<0xNN>" → NN, else null (the library's ByteFallback test: length 6, hex pair). */
export function fallbackByte(piece: string): number | null {
  if (piece.length !== 6 || !piece.startsWith('<0x') || !piece.endsWith('>')) return null;
  const b = parseInt(piece.slice(3, 5), 16);
  return Number.isNaN(b) ? null : b;
}
