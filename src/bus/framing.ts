// Frames on top of NATS messages. NATS refuses a message over the server's max_payload (1 MB by
// default) and a prefill chunk's hidden states (n × hidden × 4 bytes) easily exceed that, so large
// encodings are split into numbered chunks and put back together on the receiving side.
//
//   whole frame:  [0x00] payload
//   chunk frame:  [0x01] sender:u32 msg:u32 index:u32 count:u32 payload-slice
//
// NATS keeps the order of one publisher's messages on a subject, but chunks of different senders
// (or different messages of one sender on several subjects) interleave, so reassembly is keyed by
// (subject, sender, msg). Pure code: no sockets, tested directly.

const WHOLE = 0;
const CHUNK = 1;
const CHUNK_HEADER = 17;
/** Room left for the NATS protocol line so a full frame never trips max_payload. */
const SAFETY = 64;
/** Partial messages older than this are dropped (their sender died mid-message). */
const PARTIAL_TTL_MS = 30_000;

export class Framer {
  private readonly sender = (Math.random() * 0x1_0000_0000) >>> 0;
  private counter = 0;

  constructor(private readonly maxPayload: number) {}

  /** Splits an encoded message into frames that each fit maxPayload. */
  frames(payload: Uint8Array): Uint8Array[] {
    if (payload.byteLength + 1 <= this.maxPayload - SAFETY) {
      const f = new Uint8Array(payload.byteLength + 1);
      f[0] = WHOLE;
      f.set(payload, 1);
      return [f];
    }
    const room = this.maxPayload - SAFETY - CHUNK_HEADER;
    const count = Math.ceil(payload.byteLength / room);
    const msg = (this.counter = (this.counter + 1) >>> 0);
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const slice = payload.subarray(i * room, Math.min(payload.byteLength, (i + 1) * room));
      const f = new Uint8Array(CHUNK_HEADER + slice.byteLength);
      const dv = new DataView(f.buffer);
      f[0] = CHUNK;
      dv.setUint32(1, this.sender);
      dv.setUint32(5, msg);
      dv.setUint32(9, i);
      dv.setUint32(13, count);
      f.set(slice, CHUNK_HEADER);
      out.push(f);
    }
    return out;
  }
}

interface Partial {
  readonly parts: (Uint8Array | undefined)[];
  got: number;
  bytes: number;
  readonly at: number;
}

export class Reassembler {
  private readonly partials = new Map<string, Partial>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Returns the complete payload when `frame` completes one, else null. Throws on a malformed frame. */
  push(subject: string, frame: Uint8Array): Uint8Array | null {
    if (frame.byteLength < 1) throw new Error('empty frame');
    if (frame[0] === WHOLE) return frame.subarray(1);
    if (frame[0] !== CHUNK || frame.byteLength < CHUNK_HEADER) throw new Error(`bad frame kind ${frame[0]}`);
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const key = `${subject} ${dv.getUint32(1)} ${dv.getUint32(5)}`;
    const index = dv.getUint32(9);
    const count = dv.getUint32(13);
    if (count === 0 || index >= count) throw new Error(`bad chunk ${index}/${count}`);
    let p = this.partials.get(key);
    if (p === undefined) {
      this.sweep();
      p = { parts: new Array<Uint8Array | undefined>(count), got: 0, bytes: 0, at: this.now() };
      this.partials.set(key, p);
    }
    if (p.parts.length !== count) throw new Error(`chunk count changed for ${key}`);
    if (p.parts[index] !== undefined) return null; // duplicate
    const body = frame.subarray(CHUNK_HEADER);
    p.parts[index] = body;
    p.got++;
    p.bytes += body.byteLength;
    if (p.got < count) return null;
    this.partials.delete(key);
    const out = new Uint8Array(p.bytes);
    let off = 0;
    for (const part of p.parts) {
      out.set(part as Uint8Array, off);
      off += (part as Uint8Array).byteLength;
    }
    return out;
  }

  /** Messages waiting for more chunks (for tests and leak checks). */
  pending(): number {
    return this.partials.size;
  }

  private sweep(): void {
    const cutoff = this.now() - PARTIAL_TTL_MS;
    for (const [k, p] of this.partials) if (p.at < cutoff) this.partials.delete(k);
  }
}
