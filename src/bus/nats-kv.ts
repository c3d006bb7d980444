// A byte key-value bucket in NATS JetStream KV (the gateway's stored Responses live here, so every
// gateway of a cluster sees them). Structurally the api's BytesKv; bus never imports api.
// The bucket keeps one revision per key, expires values after ttlMs (the stream's max_age) and
// holds at most maxBytes: KV buckets are created with discard "new" (a full bucket refuses
// writes), so the stream is switched to discard "old" — a full bucket drops its oldest entries.
// Keys become NATS subjects ($KV.<bucket>.<key>), so only plain keys are taken: a caller's `*`,
// `>` or `.` would otherwise be a wildcard or another subject (issue 19).

import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';

export interface KvBucketOptions {
  readonly bucket: string;
  readonly ttlMs: number;
  readonly maxBytes: number;
  readonly maxValueBytes: number;
}

export class NatsKv {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, opts: KvBucketOptions): Promise<NatsKv> {
    const kv = await new Kvm(nc).create(opts.bucket, { history: 1, ttl: opts.ttlMs, max_bytes: opts.maxBytes, maxValueSize: opts.maxValueBytes });
    const jsm = await jetstreamManager(nc);
    const stream = `KV_${opts.bucket}`;
    const info = await jsm.streams.info(stream);
    // An existing bucket takes this gateway's size (the share per owner changes with the number of keys).
    if (info.config.discard !== DiscardPolicy.Old || info.config.max_bytes !== opts.maxBytes) {
      await jsm.streams.update(stream, { ...info.config, discard: DiscardPolicy.Old, max_bytes: opts.maxBytes });
    }
    return new NatsKv(kv);
  }

  async get(key: string): Promise<Uint8Array | null> {
    checkKey(key);
    const e = await this.kv.get(key);
    if (e === null || e.operation !== 'PUT') return null;
    return e.value;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    checkKey(key);
    await this.kv.put(key, value);
  }

  async delete(key: string): Promise<boolean> {
    const had = (await this.get(key)) !== null;
    if (had) await this.kv.purge(key);
    return had;
  }
}

const PLAIN_KEY = /^[A-Za-z0-9_-]{1,256}$/;

function checkKey(key: string): void {
  if (!PLAIN_KEY.test(key)) throw new Error(`kv key must match ${String(PLAIN_KEY)}`);
}
