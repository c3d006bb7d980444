// msgpackr codec for the wire contract: pure bytes in / message out, tested without sockets.
// Records (msgpackr's structure extension) are off so every frame is plain msgpack that any
// client can read, and so a frame decodes alone, without a shared structure table.

import { Packr } from 'msgpackr';
import { WIRE_TYPES, WIRE_VERSION, type WireMessage } from './contract.ts';
import { messageProblem } from './validate-message.ts';

const packr = new Packr({ useRecords: false, moreTypes: false });
const TYPES: ReadonlySet<string> = new Set(WIRE_TYPES);

export function encodeMessage(msg: WireMessage): Uint8Array {
  return packr.pack(msg);
}

export type Decoded =
  | { readonly ok: true; readonly msg: WireMessage }
  | { readonly ok: false; readonly reason: string; readonly version?: number; readonly from?: string };

/** Decodes one frame. Never throws: a bad frame is a reason string for the caller to log. */
export function decodeMessage(bytes: Uint8Array): Decoded {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (e) {
    return { ok: false, reason: `undecodable frame (${(e as Error).message})` };
  }
  if (typeof value !== 'object' || value === null) return { ok: false, reason: 'frame is not a map' };
  const m = value as { v?: unknown; t?: unknown; id?: unknown };
  // Only a well-formed id is repeated in a log line (a sender's text is not echoed raw).
  const from = typeof m.id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(m.id) ? m.id : undefined;
  if (m.v !== WIRE_VERSION) {
    return { ok: false, reason: 'wire version mismatch', ...(typeof m.v === 'number' ? { version: m.v } : {}), ...(from !== undefined ? { from } : {}) };
  }
  if (typeof m.t !== 'string' || !TYPES.has(m.t)) return { ok: false, reason: `unknown message type ${String(m.t)}` };
  // Every field a node states about itself is checked here, once, for every reader (issue 19).
  const problem = messageProblem(m.t, value);
  if (problem !== null) return { ok: false, reason: `${m.t}: ${problem}`, ...(from !== undefined && /^[A-Za-z0-9_-]{1,64}$/.test(from) ? { from } : {}) };
  return { ok: true, msg: value as WireMessage };
}
