// Where stored Responses live (`store: true`), so `previous_response_id` can continue a
// conversation and GET/DELETE /v1/responses/{id} can find it. The API sees a ResponseStore; under
// it is a byte key-value store: NATS JetStream KV when the gateway runs against a nats-server (so
// another gateway of the same cluster can continue the conversation; src/bus/nats-kv.ts), or
// memoryKv() in this process. Both expire entries after a TTL and hold at most a byte budget.

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

export interface ResponseStore {
  get(id: string): Promise<StoredResponse | null>;
  /** False when the entry is over the per-entry cap and was not stored. */
  put(id: string, value: StoredResponse): Promise<boolean>;
  delete(id: string): Promise<boolean>;
}

/** Kept 1 hour, 64 MiB in all, 1 MiB an entry (the default NATS max_payload). */
export const RESPONSE_STORE_DEFAULTS = Object.freeze({ ttlMs: 60 * 60 * 1000, maxBytes: 64 * 1024 * 1024, maxEntryBytes: 1024 * 1024 - 4096 });

export function jsonResponseStore(kv: BytesKv, maxEntryBytes: number = RESPONSE_STORE_DEFAULTS.maxEntryBytes): ResponseStore {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  return {
    async get(id) {
      const b = await kv.get(id);
      return b === null ? null : (JSON.parse(dec.decode(b)) as StoredResponse);
    },
    async put(id, value) {
      const b = enc.encode(JSON.stringify(value));
      if (b.length > maxEntryBytes) return false;
      await kv.put(id, b);
      return true;
    },
    delete: (id) => kv.delete(id),
  };
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
