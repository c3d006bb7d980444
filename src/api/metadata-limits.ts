import { HearthError } from '../errors/index.ts';

// OpenAI's bounds on `metadata` (https://platform.openai.com/docs/api-reference/responses/create:
// "up to 16 key-value pairs … keys are strings with a maximum length of 64 characters. Values are
// strings with a maximum length of 512 characters"). A stored response keeps its metadata, so
// without them one client could fill the store with a few requests (issue 19). The messages
// follow the wording of OpenAI's own 400s, naming the limit and what was sent.

export const METADATA_LIMITS = Object.freeze({ pairs: 16, keyChars: 64, valueChars: 512 });

/** Throws a 400 naming the limit when `metadata` (already schema-checked: string values) is over one. */
export function checkMetadata(metadata: unknown, param = 'metadata'): void {
  if (metadata === undefined || metadata === null || typeof metadata !== 'object') return;
  const L = METADATA_LIMITS;
  let n = 0;
  for (const [k, v] of Object.entries(metadata as Record<string, unknown>)) {
    if (++n > L.pairs) {
      const count = Object.keys(metadata).length;
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${param}': too many properties. Expected an object with at most ${L.pairs} properties, but got an object with ${count} properties instead.`], { param });
    }
    if (k.length > L.keyChars) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${param}': key '${k.slice(0, 16)}…' is too long. Expected keys of at most ${L.keyChars} characters, but got ${k.length} characters instead.`], { param });
    }
    if (typeof v === 'string' && v.length > L.valueChars) {
      throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`Invalid '${param}.${k}': string too long. Expected a string with maximum length ${L.valueChars}, but got a string with length ${v.length} instead.`], { param: `${param}.${k}` });
    }
  }
}
