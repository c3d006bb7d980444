// The ggml tensor types hearth reads from GGUF files, with their block geometry (ggml/src/ggml.c
// type_traits: values per block, bytes per block). Ids are ggml's `enum ggml_type`.

export const GGML = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30,
} as const;
export type GgmlType = (typeof GGML)[keyof typeof GGML];

/** Values per block and bytes per block of each type hearth decodes. */
const TRAITS: Readonly<Record<number, { readonly name: string; readonly block: number; readonly bytes: number }>> = {
  0: { name: 'F32', block: 1, bytes: 4 },
  1: { name: 'F16', block: 1, bytes: 2 },
  30: { name: 'BF16', block: 1, bytes: 2 },
  2: { name: 'Q4_0', block: 32, bytes: 18 },
  3: { name: 'Q4_1', block: 32, bytes: 20 },
  6: { name: 'Q5_0', block: 32, bytes: 22 },
  7: { name: 'Q5_1', block: 32, bytes: 24 },
  8: { name: 'Q8_0', block: 32, bytes: 34 },
  12: { name: 'Q4_K', block: 256, bytes: 144 },
  13: { name: 'Q5_K', block: 256, bytes: 176 },
  14: { name: 'Q6_K', block: 256, bytes: 210 },
};

/** ggml names of types that exist but hearth does not decode (for the error message). */
const OTHER_NAMES: Readonly<Record<number, string>> = { 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0' };

export const SUPPORTED_GGML_TYPES = Object.values(TRAITS).map((t) => t.name);

export function isSupportedGgmlType(type: number): boolean {
  return TRAITS[type] !== undefined;
}

export function ggmlTypeName(type: number): string {
  return TRAITS[type]?.name ?? OTHER_NAMES[type] ?? `type ${type}`;
}

/** The type id of a name (the stage file records raw GGUF blocks under dtype `GGUF_<name>`). */
export function ggmlTypeOf(name: string): number | null {
  for (const [id, t] of Object.entries(TRAITS)) if (t.name === name) return Number(id);
  return null;
}

/** Bytes of `n` values of `type` (n a whole number of blocks), or null for an unknown type or a partial block. */
export function ggmlByteSize(type: number, n: number): number | null {
  const t = TRAITS[type];
  if (t === undefined || n % t.block !== 0) return null;
  return (n / t.block) * t.bytes;
}

/** Values per block of `type` (rows must hold whole blocks). */
export function ggmlBlockSize(type: number): number {
  return TRAITS[type]?.block ?? 1;
}
