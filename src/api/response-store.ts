// Where stored Responses live (`store: true`), so `previous_response_id` can continue a
// conversation and GET/DELETE /v1/responses/{id} can find it. The API sees a ResponseStore; under
// it are byte key-value stores, one per owner (the API key that stored the response, as a hash):
// NATS JetStream KV buckets when the gateway runs against a nats-server (so another gateway of the
// same cluster can continue the conversation; src/bus/nats-kv.ts), or memoryKv() in this process.
//
// Why one store per owner (issue 19): OpenAI scopes stored responses to the project, so a key
// reads, continues and deletes only what it stored, and anything else is the same 404 as a missing
// id. A store of its own also gives each owner its own byte quota: a client that fills its share
// evicts its own oldest entries, never another key's. Each store expires entries after a TTL.

/** A byte key-value store with its own TTL and size cap (keys: `[A-Za-z0-9_-]+`). */
export interface BytesKv {
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, value: Uint8Array): Promise<void>;
  /** True when the key held a value. */
  delete(key: string): Promise<boolean>;
}

/** A stored response: the response object as returned, and the conversation that led to it. */
export interface StoredResponse {
  readonly response: Readonly<Record<string, unknown>>;
  /** Input items of the whole conversation before this response's output (instructions excluded). */
  readonly items: readonly unknown[];
}

/** Whether put() kept the response, and if not why (said to the client, see responses-route.ts). */
export type PutOutcome = { readonly stored: true } | { readonly stored: false; readonly reason: string };

/**
 * Stored responses by owner (ownerOf() in auth.ts: a hash of the API key, never the key). An id
 * stored by one owner does not exist for another.
 */
export interface ResponseStore {
  get(owner: string, id: string): Promise<StoredResponse | null>;
  put(owner: string, id: string, value: StoredResponse): Promise<PutOutcome>;
  delete(owner: string, id: string): Promise<boolean>;
}

/** Kept 1 hour, 64 MiB in all, 1 MiB an entry (the default NATS max_payload). */
export const RESPONSE_STORE_DEFAULTS = Object.freeze({ ttlMs: 60 * 60 * 1000, maxBytes: 64 * 1024 * 1024, maxEntryBytes: 1024 * 1024 - 4096 });

/**
 * Each owner's quota: an equal share of maxBytes among the configured keys (one anonymous owner
 * when auth is off), but room for at least 4 full-size entries, so with many keys the total may
 * exceed maxBytes (each key still evicts only its own).
 */
export function ownerShareBytes(owners: number, d: { readonly maxBytes: number; readonly maxEntryBytes: number } = RESPONSE_STORE_DEFAULTS): number {
  return Math.max(Math.floor(d.maxBytes / Math.max(1, owners)), 4 * d.maxEntryBytes);
}

/** Response ids hearth hands out: `resp_` + letters and digits. Nothing else reaches a store. */
const RESPONSE_ID = /^resp_[A-Za-z0-9_-]{1,128}$/;

export function isResponseId(id: unknown): id is string {
  return typeof id === 'string' && RESPONSE_ID.test(id);
}

/** An owner is what ownerOf() returns: hex digits, or `anonymous`. */
const OWNER = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A ResponseStore over one BytesKv per owner (opened on first use by `open`, then kept), entries
 * as JSON. An entry over maxEntryBytes is not stored.
 */
export function jsonResponseStore(open: (owner: string) => Promise<BytesKv>, maxEntryBytes: number = RESPONSE_STORE_DEFAULTS.maxEntryBytes): ResponseStore {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const kvs = new Map<string, Promise<BytesKv>>();
  const kvOf = (owner: string): Promise<BytesKv> => {
    // Owners and ids are checked here too, so no caller can put user input into a NATS subject.
    if (!OWNER.test(owner)) throw new Error(`response store: bad owner ${JSON.stringify(owner.slice(0, 80))}`);
    let kv = kvs.get(owner);
    if (kv === undefined) {
      kv = open(owner);
      kvs.set(owner, kv);
      // A failed open is retried by the next request rather than remembered.
      kv.catch(() => kvs.delete(owner));
    }
    return kv;
  };
  return {
    async get(owner, id) {
      if (!isResponseId(id)) return null;
      const b = await (await kvOf(owner)).get(id);
      return b === null ? null : (JSON.parse(dec.decode(b)) as StoredResponse);
    },
    async put(owner, id, value) {
      if (!isResponseId(id)) throw new Error(`response store: bad id ${JSON.stringify(String(id).slice(0, 80))}`);
      const b = enc.encode(JSON.stringify(value));
      if (b.length > maxEntryBytes) return { stored: false, reason: `the response is ${b.length} bytes stored, over the store's ${maxEntryBytes} bytes an entry` };
      await (await kvOf(owner)).put(id, b);
      return { stored: true };
    },
    async delete(owner, id) {
      if (!isResponseId(id)) return false;
      return (await kvOf(owner)).delete(id);
    },
  };
}

/** In-process stores, one memoryKv per owner, each holding `ownerBytes`. */
export function memoryResponseStore(ownerBytes: number = RESPONSE_STORE_DEFAULTS.maxBytes, d: { readonly ttlMs: number; readonly maxEntryBytes: number } = RESPONSE_STORE_DEFAULTS): ResponseStore {
  return jsonResponseStore(async () => memoryKv({ ttlMs: d.ttlMs, maxBytes: ownerBytes }), d.maxEntryBytes);
}

/**
 * In-process store: a Map in insertion order, so the oldest entries go first when the byte budget
 * is spent; each entry expires ttlMs after it was written.
 */
export function memoryKv(opts: { readonly ttlMs: number; readonly maxBytes: number } = RESPONSE_STORE_DEFAULTS): BytesKv {
  const map = new Map<string, { readonly value: Uint8Array; readonly expires: number }>();
  let bytes = 0;
  const drop = (key: string): boolean => {
    const e = map.get(key);
    if (e === undefined) return false;
    bytes -= e.value.length;
    map.delete(key);
    return true;
  };
  return {
    async get(key) {
      const e = map.get(key);
      if (e === undefined) return null;
      if (e.expires <= Date.now()) {
        drop(key);
        return null;
      }
      return e.value;
    },
    async put(key, value) {
      drop(key);
      map.set(key, { value, expires: Date.now() + opts.ttlMs });
      bytes += value.length;
      for (const k of map.keys()) {
        if (bytes <= opts.maxBytes) break;
        drop(k);
      }
    },
    async delete(key) {
      const e = map.get(key);
      const live = e !== undefined && e.expires > Date.now();
      drop(key);
      return live;
    },
  };
}
