// Issue 22: a join that moves layers moves the streams in flight without replaying their context.
// A slow worker serves a stream alone; a fast one joins and the plan moves to it (make before
// break). Once the newcomer has loaded, each stream's context is replayed into the new plan's KV
// while the old plan keeps decoding it; at the switch the stream feeds the new plan only the
// tokens decoded since (from a position past its prompt), never its context from position 0.
// Structure only; the gap it saves is `hearth bench --cluster --joins`'s.
import t from 'tap';
import type { ClusterPipeline } from '../src/cluster/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { createScheduler } from '../src/scheduler/index.ts';
import type { Pipeline, StepRequest } from '../src/scheduler/types.ts';
import { startJoinCluster } from './helpers/join-cluster.ts';
import { natsMissing, until } from './helpers/nats.ts';

const skip = natsMissing();

/** Every step the scheduler sends: its sequence, position, the epoch it was addressed to
 *  (undefined: the plan serving) and the plan serving when it was sent. */
interface Sent { seq: string; pos: number; to: number | undefined; serving: number }

/** The real pipeline, with every step it is asked for written down. */
function recording(p: ClusterPipeline, sent: Sent[]): Pipeline {
  const note = (r: StepRequest): void => { sent.push({ seq: r.seq, pos: r.pos, to: r.epoch, serving: p.epoch() }); };
  return {
    step: (r) => { note(r); return p.step(r); },
    decode: (r, n, stop) => { note(r); return p.decode!(r, n, stop); },
    free: (s) => p.free(s),
    waitReady: (ms) => p.waitReady(ms),
    epoch: () => p.epoch(),
    close: () => p.close(),
    onWarm: (fn) => p.onWarm!(fn),
  };
}

const servedBy = (p: ClusterPipeline, prefix: string) => (): boolean => {
  const plan = p.coordinator.plan();
  return plan !== null && plan.live && plan.stages.length === 1 && plan.stages[0]!.node.startsWith(prefix);
};

t.test('a stream in flight when a join moves layers: same tokens, moved at a token boundary, never replayed from 0', { skip }, async (t) => {
  const { pipeline, worker, logs } = await startJoinCluster(t, { hiddenSize: 128, headDim: 32, seed: 23 });
  const sent: Sent[] = [];
  const replays: string[] = [];
  const moves: { seq: string; epoch: number; from: number; tokens: number }[] = [];
  const sched = createScheduler(recording(pipeline, sent), {
    prefixCache: 0, contextLength: 2048, prefillChunk: 64,
    onReplay: (seq) => replays.push(seq),
    onMove: (seq, epoch, from, tokens) => moves.push({ seq, epoch, from, tokens }),
  });

  worker('slow', ['--slowdown', '8']);
  await until(servedBy(pipeline, 'slow'), 90_000, 'the slow worker serving alone');
  pipeline.setHopDelay(3);
  const prompt = Int32Array.from({ length: 150 }, (_, i) => (i * 37 + 5) % 500);
  const max = 160;
  /** One stream of `max` tokens; onToken(i) may hold it (a stepwise stream waits, in flight). */
  const run = async (id: string, stepwise: boolean, onToken?: (i: number) => Promise<void>): Promise<number[]> => {
    const out: number[] = [];
    for await (const ev of sched.generate({ id, prompt, maxTokens: max, sampling: GREEDY, stopTokens: [], stepwise })) {
      if (ev.type !== 'token') continue;
      out.push(ev.token.token);
      await onToken?.(out.length);
    }
    return out;
  };
  const wantStep = await run('ref-step', true);
  const wantChain = await run('ref-chain', false);
  t.equal(wantStep.length, max);
  t.same(wantChain, wantStep, 'chained and stepwise decoding agree (the reference)');
  const epoch = pipeline.epoch();

  // A stepwise stream starts the join at its 8th token and keeps decoding on the old plan while
  // the newcomer loads and is warmed; should it near its end first, it holds (in flight) until the
  // switch. A chained stream runs beside it meanwhile.
  let chain: Promise<number[]> | null = null;
  const moved = await run('join', true, async (i) => {
    if (i === 8) { worker('fast'); chain = run('beside', false); }
    if (i === max - 10) await until(servedBy(pipeline, 'fast'), 90_000, 'the fast worker serving');
  });
  const beside = await (chain as unknown as Promise<number[]>);
  const after = pipeline.epoch();

  t.ok(logs.some((l) => l.startsWith('the new plan has loaded: warming it with the streams in flight')), 'the loaded plan was warmed before the switch');
  t.equal(after, epoch + 1, 'one new epoch: straight to the plan the newcomer loaded');
  t.same(moved, wantStep, 'the moved stream: the undisturbed text');
  t.same(beside, wantChain, 'the chained stream beside it: the undisturbed text');
  t.same(replays, [], 'no stream replayed its context');
  const joinMoves = moves.filter((m) => m.seq.startsWith('join.'));
  t.equal(joinMoves.length, 1, 'the stream moved once');
  t.ok(joinMoves.every((m) => m.epoch === after && m.from > prompt.length && m.from < m.tokens), `it went on from a position past its prompt (${JSON.stringify(joinMoves)})`);
  // What the new plan's stage 0 received for the stream once it served: positions past the warm,
  // none from 0; the context went to it before, addressed to its epoch while the old plan served.
  const joinSeqs = new Set(joinMoves.map((m) => m.seq));
  const warmUp = sent.filter((s) => joinSeqs.has(s.seq) && s.to === after && s.serving === epoch);
  t.ok(warmUp.some((s) => s.pos === 0), 'its context was replayed into the new plan before the switch');
  const served = sent.filter((s) => s.seq.startsWith('join.') && s.to === undefined && s.serving === after);
  t.ok(served.length > 0, 'it stepped on the new plan after the switch');
  t.same(served.filter((s) => s.pos <= prompt.length), [], 'after the switch: no step of it from position 0 (or within its prompt)');
});
