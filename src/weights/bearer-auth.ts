// Constant-time check of `Authorization: Bearer <token>`. Both sides are hashed first so
// timingSafeEqual always compares equal lengths and the token's length does not leak either.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header.trim());
  // Compare even when the header is absent, so a missing header costs the same time as a wrong one.
  const given = m?.[1] ?? '';
  const ok = timingSafeEqual(digest(given), digest(token));
  return ok && m !== null && token.length > 0;
}
