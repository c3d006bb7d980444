// `hearth doctor` (issue 10): per node and per link — round trip, bandwidth of a 1 MB payload,
// ms per layer, clock skew, version — and what blocks a join or a plan, each said as something to
// do. It speaks the wire contract as a gateway does (hello → announces; probe → probe-reply), so
// it needs no gateway running, and answers in seconds.

import { randomBytes } from 'node:crypto';
import { speaksForItself, subjects, type AnnounceMsg, type HeartbeatMsg, type PlanMsg, type ProbeReplyMsg } from '../bus/contract.ts';
import type { Bus } from '../bus/types.ts';
import { hearthVersion } from '../bus/version.ts';
import { wallMs } from '../bus/wall-clock.ts';
import { choosePlan, msPerMbOf, type NodePerf } from './plan-choice.ts';
import { explainNoPlan, type ModelCost, type PlanNode } from './planner.ts';

export interface DoctorOptions {
  readonly bus: Bus;
  readonly cluster: string;
  /** How the doctor reached the bus (for the join hint). */
  readonly url: string;
  /** How long to listen for announces and heartbeats (default 1500 ms). */
  readonly listenMs?: number;
  /** Small probes per node (default 5); the best round trip counts. */
  readonly probes?: number;
  /** The model to plan (for ms per layer, the predicted plan and memory checks). */
  readonly cost?: ModelCost;
  readonly modelName?: string;
  /** The gateway runs this check itself (GET /v1/cluster/doctor): a gateway is there. */
  readonly gatewayOnBus?: boolean;
  /** How a worker joins (the gateway's join line, token elided), for the "no worker" advice. */
  readonly joinCommand?: string;
  /** The running plan's stages, when the caller knows them (the gateway): each node's range. */
  readonly stages?: readonly { readonly node: string; readonly start: number; readonly end: number }[];
  /** The gateway's figures for the plan serving (figures.ts): the doctor says the same numbers
   *  as GET /v1/cluster, `hearth status` and the page, not a fresh guess of its own (issue 22). */
  readonly serving?: ServingFigures | null;
}

/** The part of the gateway's forecast (coordinator.ts PlanForecast) the doctor repeats. */
export interface ServingFigures {
  readonly predictedTokS: number;
  readonly predictedBasis: string;
  readonly measuredTokS: number | null;
  readonly window: string;
  readonly summary?: string;
}

export interface DoctorNode {
  readonly id: string;
  readonly name: string;
  readonly version: string | null;
  readonly provider: string;
  readonly threads: number;
  readonly memory: number;
  readonly speed: number;
  readonly hasModel: boolean;
  readonly state: string | null;
  readonly epoch: number | null;
  readonly range: readonly [number, number] | null;
  /** Best round trip of the small probes (ms); null: no answer. */
  readonly rttMs: number | null;
  /** MB/s of a 1 MB payload there and back; null: not measured. */
  readonly bandwidthMBs: number | null;
  /** Its wall clock minus ours at the same moment (ms). */
  readonly skewMs: number | null;
  /** Decode ms per layer: measured on its stage, else estimated from its speed probe (with a
   *  model), else null. */
  readonly msPerLayer: number | null;
  readonly msPerLayerBasis: 'measured' | 'probe' | null;
}

export interface DoctorReport {
  readonly cluster: string;
  readonly version: string;
  readonly nodes: readonly DoctorNode[];
  /** Last plan message heard (a gateway publishes one on every change; usually none in a short
   *  listen). */
  readonly plan: { readonly epoch: number; readonly stages: readonly { node: string; start: number; end: number }[] } | null;
  /** With a model: what the planner would do now. */
  readonly predicted: { readonly tokS: number; readonly stages: readonly string[]; readonly idle: readonly string[] } | null;
  /** Through the gateway: the plan serving's figures, as GET /v1/cluster gives them. */
  readonly serving?: ServingFigures | null;
  /** Each problem, said as what to do. Empty: nothing blocks a join or a plan. */
  readonly problems: readonly string[];
}

/** Thresholds behind the advice (a LAN hop is ~0.2–1 ms; wall clocks within NTP's tens of ms). */
const FAR_MS = 20;
const SKEW_MS = 500;
const SLOW_LINK_MBS = 10;
const MB_PAYLOAD = 1 << 20;

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const me = `doctor-${randomBytes(4).toString('hex')}`;
  const announces = new Map<string, AnnounceMsg>();
  const beats = new Map<string, HeartbeatMsg>();
  let plan: PlanMsg | null = null;
  const waiting = new Map<number, (r: ProbeReplyMsg, at: number) => void>();
  const c = o.cluster;
  const unsubs = [
    o.bus.subscribe(subjects.announce(c, '*'), (m, subj) => { if (m.t === 'announce' && speaksForItself(subj, m.id)) announces.set(m.id, m); }),
    o.bus.subscribe(subjects.heartbeat(c, '*'), (m, subj) => { if (m.t === 'heartbeat' && speaksForItself(subj, m.id)) beats.set(m.id, m); }),
    o.bus.subscribe(subjects.plan(c), (m) => { if (m.t === 'plan') plan = m; }),
    o.bus.subscribe(subjects.probeReply(c, me, '*'), (m) => {
      if (m.t !== 'probe-reply') return;
      const w = waiting.get(m.nonce);
      if (w !== undefined) { waiting.delete(m.nonce); w(m, wallMs()); }
    }),
  ];
  let nonce = 1;
  const probe = (node: string, pad: Uint8Array | null, timeoutMs = 2000): Promise<{ rtt: number; skew: number; reply: ProbeReplyMsg } | null> => {
    const n = nonce++;
    const sent = wallMs();
    return new Promise((resolve) => {
      const timer = setTimeout(() => { waiting.delete(n); resolve(null); }, timeoutMs);
      waiting.set(n, (reply, at) => {
        clearTimeout(timer);
        const rtt = at - sent;
        resolve({ rtt, skew: reply.wall - (sent + rtt / 2), reply });
      });
      o.bus.publish(subjects.probe(c, node), { t: 'probe', from: me, nonce: n, pad, echo: pad !== null });
    });
  };
  try {
    // Workers answer a hello with an announce; heartbeats arrive every 500 ms.
    o.bus.publish(subjects.hello(c), { t: 'hello', gateway: me });
    await new Promise((r) => setTimeout(r, o.listenMs ?? 1500));
    const nodes: DoctorNode[] = [];
    const perf = new Map<string, NodePerf>();
    const measured = new Map<string, number>();
    for (const a of [...announces.values()].sort((x, y) => (x.name < y.name ? -1 : 1))) {
      let best: { rtt: number; skew: number; reply: ProbeReplyMsg } | null = null;
      for (let i = 0; i < (o.probes ?? 5); i++) {
        const r = await probe(a.id, null);
        if (r !== null && (best === null || r.rtt < best.rtt)) best = r;
      }
      let bandwidth: number | null = null;
      if (best !== null) {
        const pad = new Uint8Array(MB_PAYLOAD);
        let big: number | null = null;
        for (let i = 0; i < 2; i++) {
          const r = await probe(a.id, pad, 10_000);
          if (r !== null && r.reply.got === MB_PAYLOAD && (big === null || r.rtt < big)) big = r.rtt;
        }
        // Both ways: 2 MB over the time the payload added to a small probe's round trip.
        if (big !== null) bandwidth = (2 * MB_PAYLOAD) / 1e6 / (Math.max(0.05, big - best.rtt) / 1000);
      }
      const hb = beats.get(a.id);
      const range = hb?.stepRange !== undefined ? hb.stepRange : null;
      if (hb?.stepMs !== undefined && range !== null && o.cost !== undefined) {
        let mb = 0;
        for (let l = range[0]; l < range[1]; l++) mb += (o.cost.layerBytes[l] ?? 0) / 1e6;
        if (range[1] === o.cost.numLayers) mb += o.cost.headCost / 1e6;
        if (mb > 0) measured.set(a.id, hb.stepMs / mb);
      }
      perf.set(a.id, { msPerMb: measured.get(a.id) ?? null, legMs: best === null ? null : best.rtt / 2, probeMsPerMb: a.decodeMsPerMb ?? null });
      nodes.push({
        id: a.id, name: a.name, version: best?.reply.version ?? null, provider: a.provider ?? 'unknown', threads: a.threads,
        memory: a.memory, speed: a.speed, hasModel: a.hasModel, state: hb?.state ?? null, epoch: hb?.epoch ?? null,
        range: rangeOf(o, plan, a.id) ?? (hb !== undefined && hb.state === 'ready' ? range : null),
        rttMs: best === null ? null : round2(best.rtt), bandwidthMBs: bandwidth === null ? null : round2(bandwidth),
        skewMs: best === null ? null : round2(best.skew), msPerLayer: null, msPerLayerBasis: null,
      });
    }
    // ms per layer: measured where a node served, else from its probe speed (needs the model).
    let predicted: DoctorReport['predicted'] = null;
    const problems: string[] = [];
    const planNodes: PlanNode[] = nodes.map((n) => ({ id: n.id, name: n.name, memory: n.memory, speed: n.speed }));
    if (o.cost !== undefined && nodes.length > 0) {
      const avgMb = o.cost.layerBytes.reduce((x, y) => x + y, 0) / 1e6 / Math.max(1, o.cost.numLayers);
      const speeds = msPerMbOf(planNodes, perf);
      for (const [i, n] of nodes.entries()) {
        const s = speeds.get(n.id);
        if (s !== undefined && Number.isFinite(s.ms)) nodes[i] = { ...n, msPerLayer: Number((s.ms * avgMb).toPrecision(3)), msPerLayerBasis: s.measured ? 'measured' : 'probe' };
      }
      const choice = choosePlan(o.cost, planNodes, perf);
      if (choice === null) {
        problems.push(`no plan fits the model in the memory the workers offer: ${explainNoPlan(o.cost, planNodes)}. Give a worker more (--memory), or add one.`);
      } else {
        const name = (id: string): string => nodes.find((n) => n.id === id)?.name ?? id;
        // The plan it would choose is the one serving: say the serving plan's figure (measured
        // parts), so the doctor and the gateway never disagree about the same plan.
        const same = o.serving != null && o.stages !== undefined && o.stages.length === choice.plan.stages.length
          && choice.plan.stages.every((s, i) => s.node === o.stages?.[i]?.node && s.start === o.stages[i]?.start && s.end === o.stages[i]?.end);
        predicted = {
          tokS: same && o.serving != null ? o.serving.predictedTokS : round2(choice.prediction.tokS),
          stages: choice.plan.stages.map((s) => `${name(s.node)} [${s.start},${s.end})`),
          idle: choice.idle.map((i) => i.why),
        };
      }
    }
    problems.push(...advise(o, nodes));
    return { cluster: c, version: hearthVersion(), nodes, plan, predicted, ...(o.serving != null ? { serving: o.serving } : {}), problems };
  } finally {
    for (const u of unsubs) u();
    for (const w of waiting.keys()) waiting.delete(w);
  }
}

function advise(o: DoctorOptions, nodes: readonly DoctorNode[]): string[] {
  const out: string[] = [];
  const mine = hearthVersion();
  if (nodes.length === 0) {
    out.push(o.joinCommand !== undefined
      ? `no worker answered on cluster "${o.cluster}": start one with \`${o.joinCommand}\``
      : `no worker answered on cluster "${o.cluster}": start one with \`HEARTH_TOKEN=… ./hearth worker --join ${o.url} --cluster ${o.cluster}\` (the same --cluster name and token as the gateway)`);
    return out;
  }
  for (const n of nodes) {
    if (n.rttMs === null) {
      out.push(`node ${n.name} announced itself but did not answer probes: check that its NATS user may publish to hearth.${o.cluster}.gateway.> (or restart it with this version of hearth)`);
      continue;
    }
    if (n.version !== null && n.version !== mine) out.push(`node ${n.name} runs hearth ${n.version}, this machine ${mine}: run the same version everywhere (update the checkout on ${n.name})`);
    if (n.skewMs !== null && Math.abs(n.skewMs) > SKEW_MS) out.push(`node ${n.name}'s clock is ${Math.round(n.skewMs)} ms off this machine's: hop latencies are measured from wall clocks; sync it (NTP, e.g. chrony or systemd-timesyncd)`);
    if (n.rttMs > FAR_MS) out.push(`node ${n.name} is ${n.rttMs.toFixed(1)} ms away (round trip): each hop to it adds that to every token; put it on the same LAN (wired), or let the planner leave it out`);
    if (n.bandwidthMBs !== null && n.bandwidthMBs < SLOW_LINK_MBS) out.push(`the link to node ${n.name} carries ${n.bandwidthMBs.toFixed(1)} MB/s: long prompts send MBs of activations per hop; use a faster (wired) link`);
    if (n.state === 'failed') out.push(`node ${n.name} failed to load its layers: read its log (the gateway re-plans without it); --memory may be too small or the model files unreadable`);
    if (!n.hasModel && n.state !== 'ready') out.push(`node ${n.name} has no model folder: it fetches its layers from the gateway over HTTP, so the gateway's address must be reachable from it`);
  }
  if (o.gatewayOnBus !== true && nodes.every((n) => n.epoch === -1 || n.epoch === null)) {
    out.push(`no gateway has assigned layers to any worker: start the gateway (\`hearth up\` or \`hearth gateway\`) with --cluster ${o.cluster} on this bus`);
  }
  return out;
}

/** A node's layer range in the running plan: from the caller, else from a plan message heard. */
function rangeOf(o: DoctorOptions, plan: PlanMsg | null, id: string): readonly [number, number] | null {
  const s = (o.stages ?? plan?.stages ?? []).find((x) => x.node === id);
  return s === undefined ? null : [s.start, s.end];
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
