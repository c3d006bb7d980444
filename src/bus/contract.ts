// hearth's wire contract between processes — the one place that says what crosses NATS.
// Like a .proto file (text-generation-inference's proto/v3/generate.proto): subjects, message
// shapes, and the version. Any change to a message's meaning bumps WIRE_VERSION; a receiver drops
// (and logs) messages of another version instead of misreading them.
//
// Encoding: msgpackr maps (src/bus/codec.ts); binary tensors travel as msgpack `bin` (Uint8Array
// holding little-endian Float32/Int32 bytes: every platform Node and onnxruntime-node ship for is
// little-endian, so bytes go out as they lie in memory); see f32()/i32()/bin() below. Frames larger than the
// server's max_payload are split and reassembled by src/bus/framing.ts, below this contract.

import type { SampledToken, SamplingParams } from '../sampling/types.ts';

// 2 (issue 19): membership, fault and probe-reply subjects carry the sender's node id, so the
// server's per-node permissions bind each such message to the credential that sent it; and
// AssignMsg.model.weightsToken is a per-node grant for that node's layers only.
export const WIRE_VERSION = 2;

// --- subjects ------------------------------------------------------------------------------
// Everything lives under `hearth.<cluster>.` so several clusters can share one nats-server.
// Node and gateway ids are [A-Za-z0-9_-] (see isValidId) so they are always one subject token.

export const subjects = {
  // Membership subjects name their sender (issue 19): `node` is the sending node's id, and a
  // node's credential may publish only under its own id (src/trust/permissions.ts), so nats-server
  // itself refuses a node speaking in another's name. Receivers subscribe with node = '*' and
  // drop a message whose body `id` is not the subject's (see senderOf).
  /** worker → gateway: "I am here" (sent at start and whenever a gateway says hello). */
  announce: (cluster: string, node: string) => `hearth.${cluster}.member.${node}.announce`,
  /** worker → gateway, every HEARTBEAT_MS. */
  heartbeat: (cluster: string, node: string) => `hearth.${cluster}.member.${node}.heartbeat`,
  /** worker → gateway: leaving cleanly (SIGTERM); the gateway re-plans at once. */
  leave: (cluster: string, node: string) => `hearth.${cluster}.member.${node}.leave`,
  /** gateway → all workers: a gateway (re)started; workers answer with an announce. */
  hello: (cluster: string) => `hearth.${cluster}.hello`,
  /** gateway → all: the current plan (for observers such as `hearth status`). */
  plan: (cluster: string) => `hearth.${cluster}.plan`,
  /** gateway → one worker: load this layer range for this epoch. */
  assign: (cluster: string, node: string) => `hearth.${cluster}.node.${node}.assign`,
  /** worker → gateway: the assignment of an epoch is loaded (or failed). */
  loaded: (cluster: string, node: string) => `hearth.${cluster}.member.${node}.loaded`,
  /** previous stage (or the gateway for stage 0) → one worker: run these positions. */
  step: (cluster: string, node: string) => `hearth.${cluster}.node.${node}.step`,
  /** last stage (or any stage, on error) → the gateway that sent the step. */
  result: (cluster: string, gateway: string) => `hearth.${cluster}.gateway.${gateway}.result`,
  /** gateway → all workers: drop the KV of these sequences. */
  free: (cluster: string) => `hearth.${cluster}.free`,
  /** gateway or `hearth doctor` → one worker: answer this probe (link round trip, bandwidth). */
  probe: (cluster: string, node: string) => `hearth.${cluster}.node.${node}.probe`,
  /** worker → the gateway or doctor that probed it. */
  probeReply: (cluster: string, from: string, node: string) => `hearth.${cluster}.gateway.${from}.probe.${node}`,
  // --- trust (issue 14), additive ---
  /** worker holding only the join token → gateway: "give node `id` a credential for this nkey". */
  join: (cluster: string) => `hearth.${cluster}.join`,
  /** gateway → that worker: the answer to its join (nothing secret: the worker made its own key). */
  joined: (cluster: string, node: string) => `hearth.${cluster}.joined.${node}`,
  /** any stage → the gateway: a step it could not run (a ResultMsg with `error` set). Errors travel
   *  apart from results so that the bus can let only the last stage publish tokens (results),
   *  while every stage can still say "I failed" — which at most makes the gateway replay. */
  fault: (cluster: string, gateway: string, node: string) => `hearth.${cluster}.gateway.${gateway}.fault.${node}`,
} as const;

/** The node a sender-bound subject (announce, heartbeat, leave, loaded, fault, probe-reply) names
 *  as its sender, or null for any other subject. */
export function senderOf(subject: string): string | null {
  const p = subject.split('.');
  if (p.length === 5 && p[2] === 'member') return p[3] ?? null;
  if (p.length === 6 && p[2] === 'gateway' && (p[4] === 'fault' || p[4] === 'probe')) return p[5] ?? null;
  return null;
}

/** Whether a message's claimed id is the id its subject binds it to (issue 19: a node may speak
 *  only for itself; the server lets a credential publish only under its own id). */
export function speaksForItself(subject: string, id: unknown): boolean {
  const s = senderOf(subject);
  return s !== null && s === id;
}

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_RE.test(id);
}

// --- timing --------------------------------------------------------------------------------

/** Workers heartbeat this often. */
export const HEARTBEAT_MS = 500;
/** A node silent this long is lost (issue 3: noticed within 3 s). */
export const NODE_TIMEOUT_MS = 2000;

// --- messages ------------------------------------------------------------------------------

export const NODE_STATES = ['idle', 'loading', 'ready', 'failed'] as const;
export type NodeState = (typeof NODE_STATES)[number];

interface Base {
  /** WIRE_VERSION of the sender. */
  readonly v: number;
}

export interface AnnounceMsg extends Base {
  readonly t: 'announce';
  readonly id: string;
  readonly name: string;
  /** Bytes this node offers for weights + KV (its --memory, else free RAM minus a reserve). */
  readonly memory: number;
  readonly freeMemory: number;
  readonly threads: number;
  /** Measured matmul speed in GFLOP/s (rounded to a coarse log scale so noise does not re-plan). */
  readonly speed: number;
  /** ms per MB of int4 weights its decode kernel streams for one token on its threads, timed at
   *  start (runtime/decode-probe.ts): the planner's per-node speed until the node has served;
   *  absent from older nodes and from nodes given --speed. */
  readonly decodeMsPerMb?: number;
  /** Whether the node has the model folder locally (else it fetches its layers from the gateway). */
  readonly hasModel: boolean;
  /** onnxruntime execution provider it runs with ('cpu' | 'cuda'); absent from older nodes. */
  readonly provider?: string;
  /** Total memory of the device (os.totalmem()); absent from older nodes. */
  readonly totalMemory?: number;
  /** The layer range this node has loaded and can serve at once (a gateway that restarted keeps
   *  it: issue 20); absent when it holds none, and from older nodes. */
  readonly holding?: { readonly model: string; readonly start: number; readonly end: number };
}

export interface HeartbeatMsg extends Base {
  readonly t: 'heartbeat';
  readonly id: string;
  /** Epoch of the assignment this node holds (−1: none). */
  readonly epoch: number;
  readonly state: NodeState;
  readonly kvBytes: number;
  /** Bytes of weights its loaded stage holds (0 when none); absent from older nodes. */
  readonly weightBytes?: number;
  readonly freeMemory: number;
  /** Positions processed per second over the last few seconds. */
  readonly tokS: number;
  /** Measured time (ms) of one decode step of one sequence on its stage (a low quantile of
   *  recent single-position steps: compute without queueing), and the layer range it was measured
   *  on; absent until it has served. The planner's ms per layer comes from these. */
  readonly stepMs?: number;
  readonly stepRange?: readonly [number, number];
}

export interface LeaveMsg extends Base {
  readonly t: 'leave';
  readonly id: string;
}

export interface HelloMsg extends Base {
  readonly t: 'hello';
  readonly gateway: string;
}

export interface PlanStage {
  readonly node: string;
  readonly start: number;
  readonly end: number;
}

export interface PlanMsg extends Base {
  readonly t: 'plan';
  readonly epoch: number;
  readonly model: string;
  readonly stages: readonly PlanStage[];
  readonly live: boolean;
}

/** What a worker needs to find or fetch the model and build its shard. */
export interface ModelRef {
  /** Model id as served (e.g. the folder name). */
  readonly name: string;
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  /** Where to fetch weights when the node lacks them (gateway HTTP base URL), and its bearer token. */
  readonly gatewayUrl: string;
  readonly weightsToken: string;
  /** Context the gateway serves (its contextLength): a stage builds its rotary tables for this many
   *  positions, not the model's maximum (issue 20). Absent from older gateways: the model's maximum. */
  readonly contextLength?: number;
}

export interface AssignMsg extends Base {
  readonly t: 'assign';
  readonly epoch: number;
  readonly gateway: string;
  readonly model: ModelRef;
  /** null: this node has no stage in the plan (it unloads and idles). */
  readonly range: { readonly start: number; readonly end: number } | null;
  /** Node id of the next stage; null on the last stage (it answers the gateway). */
  readonly next: string | null;
  /** Node id of stage 0: the last stage sends a chained step (StepMsg.chain) there. Absent from
   *  older gateways (then nothing is chained). */
  readonly first?: string | null;
  /** Stages in the plan (absent from older gateways: taken as 1). A stage then steps at most
   *  ceil(decoding sequences / stages) of them at a time, so the batch splits into one micro-batch
   *  per stage and every stage has one to work on instead of the whole batch moving together. */
  readonly stages?: number;
  readonly quant: 'none' | 'int4';
  readonly threads: number;
  /** Bytes of KV this node may hold for its stage: its offer less what the planner counts for the
   *  stage's weights and overhead (issue 20). Absent from older gateways: the node works it out. */
  readonly kvBytes?: number;
}

export interface LoadedMsg extends Base {
  readonly t: 'loaded';
  readonly id: string;
  readonly epoch: number;
  readonly ok: boolean;
  readonly error: string | null;
  readonly weightBytes: number;
}

export interface StepMsg extends Base {
  readonly t: 'step';
  readonly epoch: number;
  /** Gateway id to answer (result subject). */
  readonly gateway: string;
  readonly seq: string;
  /** Gateway-unique id of this step: results are matched by (seq, stepId). */
  readonly stepId: number;
  readonly pos: number;
  readonly n: number;
  /** Int32 little-endian bytes of the n token ids. */
  readonly tokens: Uint8Array;
  /** Float32 bytes [n, hiddenSize]; null for stage 0. */
  readonly hidden: Uint8Array | null;
  readonly promptLen: number;
  readonly sampling: SamplingParams;
  readonly wantToken: boolean;
  readonly wantLogits: boolean;
  readonly fork: { readonly from: string; readonly len: number } | null;
  /** Compute each of the n positions bit for bit as n one-position steps would (StageItem.exact);
   *  absent = false. Forwarded unchanged to every stage. */
  readonly exact?: boolean;
  /** Sender's wall clock (ms) at publish: the receiver measures this hop's latency from it. */
  readonly sentAt: number;
  /** Latencies (ms) of the hops this step has made so far (gateway → stage 0 → …). */
  readonly hopMs: readonly number[];
  /** Time (ms) each stage so far held the step, from receiving it to publishing onward
   *  (queueing + compute + sampling): with hopMs it says where a step's time went. */
  readonly stageMs: readonly number[];
  /** Delay (ms) every stage adds before its next publish: the LAN-latency benchmark sets it per
   *  step so one set of loaded workers serves every delay. 0 in normal operation. */
  readonly delayMs: number;
  /** Two hops per token (issue 10): the last stage samples, then — while `left` > 1 and the token
   *  is not one of `stop` — sends the next decode step (that token at pos + n, stepId + 1,
   *  left − 1) straight to stage 0, and its result to the gateway in parallel. The gateway stays
   *  the authority: it ends a sequence by freeing it, and workers drop steps of freed sequences.
   *  Absent or null: answer the gateway only (constrained steps, older gateways). */
  readonly chain?: StepChain | null;
  /** Speculative decoding (issue 11) — optional fields, absent on an ordinary step, so they add to
   *  version 1 without changing any existing message's meaning.
   *  `rewind`: pos may be below this stage's KV length for seq; every stage cuts that KV back to
   *  pos before running the step. This flag IS the contract's truncate instruction: the rejected
   *  drafts of a verify step are rolled back by the sequence's next step, on every stage as it
   *  passes, instead of by a separate message (no extra round, and no race with that next step). */
  readonly rewind?: boolean;
  /** Verify step: the last stage returns the choice after each of the last `choices` positions
   *  (tokens = [last accepted, d1..dk] → k+1 choices; logits, when asked, as [choices, vocabSize]). */
  readonly choices?: number;
  /** Embedding step (issue 21), optional like the fields above: the last stage answers with every
   *  position's final-normed hidden state (ResultMsg.hidden) and samples nothing. Absent = false. */
  readonly wantHidden?: boolean;
}

export interface StepChain {
  /** Tokens still to sample, this step's included. */
  readonly left: number;
  /** Token ids that end the sequence: no step is chained after one. */
  readonly stop: readonly number[];
}

export interface ResultMsg extends Base {
  readonly t: 'result';
  readonly id: string;
  readonly epoch: number;
  readonly seq: string;
  readonly stepId: number;
  readonly token: SampledToken | null;
  /** choices > 1: the choice after each of the last `choices` positions (token is the last one). */
  readonly tokens?: readonly SampledToken[];
  /** Float32 bytes [vocabSize] when wantLogits ([choices, vocabSize] for a verify step). */
  readonly logits: Uint8Array | null;
  /** StepMsg.wantHidden: Float32 bytes [n, hiddenSize], the final-normed states (absent otherwise). */
  readonly hidden?: Uint8Array;
  /** Set when a stage could not run the step. `code` is a HearthError code. */
  readonly error: { readonly code: string; readonly message: string } | null;
  /** Sender's wall clock at publish, the latencies of the hops before it, and each stage's time
   *  (see StepMsg). */
  readonly sentAt: number;
  readonly hopMs: readonly number[];
  readonly stageMs: readonly number[];
}

export interface FreeMsg extends Base {
  readonly t: 'free';
  readonly seqs: readonly string[];
}

/** A link probe: the worker answers at once (after its own simulated link delay, if any). */
export interface ProbeMsg extends Base {
  readonly t: 'probe';
  /** Gateway or doctor id: the answer goes to probeReply(cluster, from). */
  readonly from: string;
  readonly nonce: number;
  /** Payload to time the link's bandwidth (null: round trip only). */
  readonly pad: Uint8Array | null;
  /** Send the payload back (bandwidth both ways). */
  readonly echo: boolean;
}

export interface ProbeReplyMsg extends Base {
  readonly t: 'probe-reply';
  readonly id: string;
  readonly nonce: number;
  /** The worker's wall clock (ms) when it answered: clock skew = wall − (sent + rtt / 2). */
  readonly wall: number;
  /** The worker's hearth version (package.json). */
  readonly version: string;
  /** Bytes of payload it received. */
  readonly got: number;
  readonly pad: Uint8Array | null;
}

/** A worker asks for its own NATS credential (sent with the join token's connection, which may
 *  publish nothing else). The worker made the nkey pair itself: its seed never leaves it. */
export interface JoinMsg extends Base {
  readonly t: 'join';
  readonly id: string;
  readonly name: string;
  /** Public nkey ("U…") the node will connect with. */
  readonly nkey: string;
}

export interface JoinedMsg extends Base {
  readonly t: 'joined';
  readonly id: string;
  readonly ok: boolean;
  /** Why the join was refused (ok false). */
  readonly error: string | null;
}

export type WireMessage =
  | AnnounceMsg | HeartbeatMsg | LeaveMsg | HelloMsg | PlanMsg | AssignMsg | LoadedMsg
  | StepMsg | ResultMsg | FreeMsg | ProbeMsg | ProbeReplyMsg | JoinMsg | JoinedMsg;
export type WireType = WireMessage['t'];
export const WIRE_TYPES = ['announce', 'heartbeat', 'leave', 'hello', 'plan', 'assign', 'loaded', 'step', 'result', 'free', 'probe', 'probe-reply', 'join', 'joined'] as const satisfies readonly WireType[];

/** Distributes Omit over the union, so `Draft<StepMsg>` is a StepMsg without `v`. */
export type Draft<M extends WireMessage> = M extends WireMessage ? Omit<M, 'v'> : never;

// --- binary helpers ------------------------------------------------------------------------

/** Bytes view of a typed array (no copy). */
export function bin(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Float32Array over wire bytes; copies only when the bytes are not 4-aligned. */
export function f32(b: Uint8Array): Float32Array {
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
  return new Float32Array(copyBytes(b).buffer);
}

export function i32(b: Uint8Array): Int32Array {
  if (b.byteOffset % 4 === 0) return new Int32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
  return new Int32Array(copyBytes(b).buffer);
}

/** A fresh, aligned copy (Buffer#slice would be a view, not a copy). */
function copyBytes(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}
