// An in-process Bus with the NATS bus's contract (same framing, same max_payload, asynchronous
// delivery), for `hearth up` on a machine without a nats-server binary and for unit tests.
// One MemoryHub is the "server"; each participant gets its own MemoryBus on it.

import { FramedBus } from './framed-bus.ts';
import { subjectMatches } from './subject-match.ts';
import type { Log } from './types.ts';

const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

interface Sub {
  readonly pattern: string;
  readonly deliver: (frame: Uint8Array, subject: string) => void;
}

export class MemoryHub {
  private readonly subs = new Set<Sub>();
  constructor(readonly maxPayload: number = DEFAULT_MAX_PAYLOAD) {}

  publish(subject: string, frame: Uint8Array): void {
    if (frame.byteLength > this.maxPayload) throw new Error(`frame of ${frame.byteLength} bytes exceeds max_payload ${this.maxPayload}`);
    for (const sub of this.subs) {
      // Delivered on a later turn, like a network: a handler never runs inside publish().
      if (subjectMatches(sub.pattern, subject)) setImmediate(sub.deliver, frame, subject);
    }
  }

  add(sub: Sub): () => void {
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }

  bus(log?: Log): MemoryBus {
    return new MemoryBus(this, log);
  }
}

export class MemoryBus extends FramedBus {
  private readonly unsubs = new Set<() => void>();
  private closed = false;

  constructor(private readonly hub: MemoryHub, log?: Log) {
    super(hub.maxPayload, log);
  }

  protected publishRaw(subject: string, frame: Uint8Array): void {
    if (this.closed) return;
    this.hub.publish(subject, frame);
  }

  protected subscribeRaw(pattern: string, onFrame: (frame: Uint8Array, subject: string) => void): () => void {
    let live = true;
    const remove = this.hub.add({ pattern, deliver: (f, s) => { if (live && !this.closed) onFrame(f, s); } });
    const unsub = (): void => { live = false; remove(); this.unsubs.delete(unsub); };
    this.unsubs.add(unsub);
    return unsub;
  }

  async flush(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const u of [...this.unsubs]) u();
    this.closed = true;
    this.emitStatus('closed', 'closed');
  }
}
