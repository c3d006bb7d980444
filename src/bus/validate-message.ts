// Field checks for the messages a node (or anyone on the bus) sends about itself (issue 19): a
// node's announce and heartbeat feed the planner, the snapshot behind GET /v1/cluster, the status
// page and `hearth status`, so a wrong type, a NaN, a megabyte name or a terminal escape sequence
// must stop here, at the codec, not in every reader. Pure: message in, reason (or null) out.
// Hot-path messages (step, result, assign) come only from credentials confined to their plan
// edges and are checked by their readers; they pass through with the type check alone.

import { NODE_STATES, isValidId } from './contract.ts';

/** Longest display name a node may give itself (code units). */
export const MAX_NAME_LENGTH = 64;
/** Longest free-text field (an error a node reports). */
export const MAX_TEXT_LENGTH = 2000;
/** Byte counts above this (1 PiB) are not a device's. */
const MAX_BYTES = 2 ** 50;
const MAX_RATE = 1e9;

// C0/C1 controls (ESC, BEL, CR…), format characters (bidi overrides, zero-width joiners) and the
// line/paragraph separators: nothing a name needs, all things a terminal or a page misreads.
const UNPRINTABLE_RE = /[\p{Cc}\p{Cf}\u2028\u2029]/u;

type Obj = Readonly<Record<string, unknown>>;
type Check = (m: Obj) => string | null;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

export function printableText(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max && !UNPRINTABLE_RE.test(v);
}
const num = (v: unknown, lo: number, hi: number): boolean => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
const int = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && num(v, lo, hi);
const bytes = (v: unknown): boolean => int(v, 0, MAX_BYTES);
const opt = (v: unknown, ok: (x: unknown) => boolean): boolean => v === undefined || ok(v);

/** The first failing field of m, or null. */
function fields(m: Obj, spec: Readonly<Record<string, (v: unknown) => boolean>>): string | null {
  for (const [k, ok] of Object.entries(spec)) if (!ok(m[k])) return `bad field ${k}`;
  return null;
}

const id = (v: unknown): boolean => isValidId(v);
const name = (v: unknown): boolean => printableText(v, MAX_NAME_LENGTH) && v.length > 0;
const text = (v: unknown): boolean => printableText(v, MAX_TEXT_LENGTH);
const textOrNull = (v: unknown): boolean => v === null || typeof v === 'string' && v.length <= MAX_TEXT_LENGTH;
const bool = (v: unknown): boolean => typeof v === 'boolean';
const epoch = (v: unknown): boolean => int(v, -1, 2 ** 31);
const binOrNull = (v: unknown): boolean => v === null || v instanceof Uint8Array;
const states: ReadonlySet<unknown> = new Set(NODE_STATES);
const range = (v: unknown): boolean => Array.isArray(v) && v.length === 2 && int(v[0], 0, 1e6) && int(v[1], 0, 1e6) && (v[0] as number) < (v[1] as number);
const stages = (v: unknown): boolean => Array.isArray(v) && v.length <= 4096 && v.every((s) => isObj(s) && id(s['node']) && int(s['start'], 0, 1e6) && int(s['end'], 0, 1e6));

const CHECKS: Readonly<Record<string, Check>> = {
  announce: (m) => fields(m, {
    id, name, memory: bytes, freeMemory: bytes, threads: (v) => int(v, 1, 65_536), speed: (v) => num(v, 0, MAX_RATE), hasModel: bool,
    decodeMsPerMb: (v) => opt(v, (x) => num(x, 1e-6, 1e6)),
    provider: (v) => opt(v, (x) => typeof x === 'string' && /^[a-z0-9_-]{1,16}$/.test(x)), totalMemory: (v) => opt(v, bytes),
    holding: (v) => opt(v, (x) => isObj(x) && text(x['model']) && int(x['start'], 0, 1e6) && int(x['end'], 0, 1e6) && (x['start'] as number) < (x['end'] as number)),
  }),
  heartbeat: (m) => fields(m, {
    id, epoch, state: (v) => states.has(v), kvBytes: bytes, weightBytes: (v) => opt(v, bytes), freeMemory: bytes, tokS: (v) => num(v, 0, MAX_RATE),
    stepMs: (v) => opt(v, (x) => num(x, 0, 1e9)), stepRange: (v) => opt(v, range),
  }),
  leave: (m) => fields(m, { id }),
  loaded: (m) => fields(m, { id, epoch, ok: bool, error: textOrNull, weightBytes: bytes }),
  'probe-reply': (m) => fields(m, { id, nonce: (v) => int(v, 0, Number.MAX_SAFE_INTEGER), wall: (v) => num(v, 0, 1e15), version: text, got: bytes, pad: binOrNull }),
  join: (m) => fields(m, { id, name, nkey: (v) => typeof v === 'string' && /^[A-Z0-9]{1,64}$/.test(v) }),
  joined: (m) => fields(m, { id, ok: bool, error: textOrNull }),
  hello: (m) => fields(m, { gateway: id }),
  plan: (m) => fields(m, { epoch, model: text, stages, live: bool }),
  free: (m) => fields(m, { seqs: (v) => Array.isArray(v) && v.every((s) => typeof s === 'string') }),
  probe: (m) => fields(m, { from: id, nonce: (v) => int(v, 0, Number.MAX_SAFE_INTEGER), pad: binOrNull, echo: bool }),
};

/** Why a decoded message of type `t` is unfit to act on, or null when it is fine. */
export function messageProblem(t: string, m: unknown): string | null {
  if (!isObj(m)) return 'frame is not a map';
  const check = CHECKS[t];
  return check === undefined ? null : check(m);
}
