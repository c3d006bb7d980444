import type { Draft, WireMessage } from './contract.ts';

export const BUS_STATUSES = ['disconnected', 'reconnecting', 'reconnected', 'closed'] as const;
export type BusStatus = (typeof BUS_STATUSES)[number];

/** The slice of pino's logger the bus and cluster use (pino.Logger satisfies it). */
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const SILENT_LOG: Log = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Publish/subscribe of wire-contract messages. Implemented over NATS (nats-bus.ts) and in-process
 * (memory-bus.ts). The cluster, gateway and workers know this interface, never NATS itself.
 */
export interface Bus {
  /** Largest frame the transport takes; larger messages are chunked under it. */
  readonly maxPayload: number;
  /** Encodes (stamping WIRE_VERSION), chunks when needed, publishes. Fire and forget. */
  publish(subject: string, msg: Draft<WireMessage>): void;
  /** `subject` may use NATS wildcards (`*`, `>`). Frames of another wire version are dropped and logged. */
  subscribe(subject: string, handler: (msg: WireMessage, subject: string) => void): () => void;
  /** Resolves once everything published so far reached the server. */
  flush(): Promise<void>;
  onStatus(listener: (status: BusStatus, detail: string) => void): () => void;
  close(): Promise<void>;
}
