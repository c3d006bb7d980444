export * from './contract.ts';
export { encodeMessage, decodeMessage, type Decoded } from './codec.ts';
export { Framer, Reassembler } from './framing.ts';
export { subjectMatches } from './subject-match.ts';
export { FramedBus } from './framed-bus.ts';
export { MemoryHub, MemoryBus } from './memory-bus.ts';
export { NatsBus, type NatsBusOptions } from './nats-bus.ts';
export { wallMs } from './wall-clock.ts';
export { BUS_STATUSES, SILENT_LOG, type Bus, type BusStatus, type Log } from './types.ts';
