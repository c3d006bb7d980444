// The part of a Bus that is the same over every transport: contract encoding, version checks,
// chunking. Subclasses move opaque frames.

import { decodeMessage, encodeMessage } from './codec.ts';
import { WIRE_VERSION, type Draft, type WireMessage } from './contract.ts';
import { Framer, Reassembler } from './framing.ts';
import { SILENT_LOG, type Bus, type BusStatus, type Log } from './types.ts';

export abstract class FramedBus implements Bus {
  private readonly framer: Framer;
  private readonly statusListeners = new Set<(s: BusStatus, d: string) => void>();
  /** Senders already reported for a wrong version or a bad frame (log once, not per message). */
  private readonly reported = new Set<string>();

  protected constructor(readonly maxPayload: number, protected readonly log: Log = SILENT_LOG) {
    this.framer = new Framer(maxPayload);
  }

  protected abstract publishRaw(subject: string, frame: Uint8Array): void;
  protected abstract subscribeRaw(subject: string, onFrame: (frame: Uint8Array, subject: string) => void): () => void;
  abstract flush(): Promise<void>;
  abstract close(): Promise<void>;

  publish(subject: string, msg: Draft<WireMessage>): void {
    const payload = encodeMessage({ v: WIRE_VERSION, ...msg } as WireMessage);
    for (const f of this.framer.frames(payload)) this.publishRaw(subject, f);
  }

  subscribe(subject: string, handler: (msg: WireMessage, subject: string) => void): () => void {
    const reassembler = new Reassembler();
    return this.subscribeRaw(subject, (frame, subj) => {
      let payload: Uint8Array | null;
      try {
        payload = reassembler.push(subj, frame);
      } catch (e) {
        this.reportOnce(`frame:${subj}`, { subject: subj, err: (e as Error).message }, 'dropped a malformed frame');
        return;
      }
      if (payload === null) return;
      const d = decodeMessage(payload);
      if (!d.ok) {
        this.reportOnce(`${d.reason}:${d.from ?? subj}`, { subject: subj, from: d.from, version: d.version, expected: WIRE_VERSION }, `dropped a message: ${d.reason}`);
        return;
      }
      try {
        handler(d.msg, subj);
      } catch (e) {
        this.log.error({ subject: subj, err: (e as Error).stack }, 'message handler threw');
      }
    });
  }

  onStatus(listener: (status: BusStatus, detail: string) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  protected emitStatus(status: BusStatus, detail: string): void {
    for (const l of this.statusListeners) l(status, detail);
  }

  private reportOnce(key: string, obj: object, msg: string): void {
    if (this.reported.has(key)) return;
    if (this.reported.size > 1000) this.reported.clear();
    this.reported.add(key);
    this.log.warn(obj, msg);
  }
}
