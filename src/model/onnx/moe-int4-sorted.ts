// int4 routed experts without a branch per expert (issue 23): the (token, expert) pairs the router
// picks are sorted by expert once, the routed rows gathered once into one [P, H] block laid out
// expert after expert, and each expert's MatMulNBits runs on its own slice of it (Split with the
// per-expert counts; an expert nobody picked gets a 0-row slice, which MatMulNBits takes as M = 0
// and skips). The SwiGLU runs once over every expert's rows; the outputs go back to their pairs with
// one Gather and are summed per token weighted by the routing weights.
//
// Why (profile in docs/performance.md "MoE"): the previous graph had one `If` per expert, each
// gathering its rows by mask and scattering its result into a zero [N, H] that a Sum of all E then
// added up — O(E·N·H) memory traffic per layer and ~12 nodes per expert behind a subgraph call.
// Here the traffic is O(N·k·H) and an expert costs two MatMulNBits nodes.
//
// Each expert's slice is padded to an even row count (pad rows read token 0 and are never read
// back): MatMulNBits at blocks over 32 computes the last row of an odd count with its one-row
// kernel, whose rounding differs (see build-shard.ts nbits), and a row's bits must not depend on
// which other rows share its expert in this batch.

import { DT, MS_DOMAIN, type GraphBuilder } from './graph.ts';
import type { Int4Expert, Int4ExpertsSpec } from './moe.ts';

/** int4 experts over x2 [N, H] with router logits [N, E]; returns [N, H]. `expert(e)` makes expert e's initializers. */
export function int4ExpertsSortedGraph(g: GraphBuilder, x2: string, logits: string, spec: Int4ExpertsSpec, expert: (e: number) => Int4Expert): string {
  const { hidden: h, inter, block, numExperts: E, topK: k } = spec;
  const scalar = (v: number): string => g.init(g.name('c'), DT.int64, [], BigInt64Array.of(BigInt(v)), false);
  const probs = g.op('Softmax', [logits], { axis: -1 });
  const [top, idx] = g.node('TopK', [probs, g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 }) as [string, string];
  const weights = spec.normTopK ? g.op('Div', [top, g.op('ReduceSum', [top, g.i64([-1])], { keepdims: 1 })]) : top; // [N, k]

  // Pair i = token·k + slot; f[i] its expert. Sort the pairs by expert (keys f·NK + i are unique,
  // so the order is fully determined), count each expert's pairs and pad each count to even.
  const f = g.op('Reshape', [idx, g.i64([-1])]); // [NK]
  const nk = g.op('Shape', [f]); // [1]
  const pairs = g.op('Range', [scalar(0), g.op('Squeeze', [nk, g.i64([0])]), scalar(1)]); // [NK]
  const [, order] = g.node('TopK', [g.op('Add', [g.op('Mul', [f, nk]), pairs]), nk], 2, { axis: 0, largest: 0, sorted: 1 }) as [string, string];
  const sortedF = g.op('Gather', [f, order], { axis: 0 });
  const zerosE = g.op('Expand', [g.i64([0]), g.i64([E])]);
  const counts = g.op('ScatterElements', [zerosE, f, g.op('Expand', [g.i64([1]), nk])], { axis: 0, reduction: 'add' }); // [E]
  const padded = g.op('Add', [counts, g.op('Mod', [counts, g.i64([2])])]); // [E]
  const startPadded = g.op('CumSum', [padded, scalar(0)], { exclusive: 1 });
  const start = g.op('CumSum', [counts, scalar(0)], { exclusive: 1 });
  // Sorted pair j sits at its expert's padded start plus its rank among that expert's pairs.
  const pos = g.op('Add', [g.op('Sub', [g.op('Gather', [startPadded, sortedF], { axis: 0 }), g.op('Gather', [start, sortedF], { axis: 0 })]), pairs]); // [NK]
  const total = g.op('ReduceSum', [padded, g.i64([0])], { keepdims: 1 }); // [1] = P
  const slotToken = g.op('ScatterElements', [g.op('Expand', [g.i64([0]), total]), pos, g.op('Div', [order, g.i64([k])])], { axis: 0 }); // [P]
  const xs = g.op('Gather', [x2, slotToken], { axis: 0 }); // [P, H]

  const nbits = (a: string, [q, s]: readonly [string, string], K: number, N: number): string =>
    g.op('MatMulNBits', [a, q, s], { K, N, bits: 4, block_size: block, accuracy_level: spec.accuracyLevel }, MS_DOMAIN);
  const ex = Array.from({ length: E }, (_, e) => expert(e));
  const split = (t: string): string[] => (E === 1 ? [t] : g.node('Split', [t, padded], E, { axis: 0 }));
  const cat = (ts: string[]): string => (E === 1 ? (ts[0] as string) : g.op('Concat', ts, { axis: 0 }));
  const gu = cat(split(xs).map((part, e) => nbits(part, (ex[e] as Int4Expert).gateUp, h, 2 * inter))); // [P, 2I]
  const [gate, up] = g.node('Split', [gu, g.i64([inter, inter])], 2, { axis: -1 }) as [string, string];
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]); // [P, I]
  const ys = cat(split(act).map((part, e) => nbits(part, (ex[e] as Int4Expert).down, inter, h))); // [P, H]

  // Back to the pairs in token order (pair order[j] is at pos[j]), weighted, summed over k.
  const posOfPair = g.op('ScatterElements', [g.op('Mul', [f, g.i64([0])]), order, pos], { axis: 0 }); // [NK]
  const yPairs = g.op('Reshape', [g.op('Gather', [ys, posOfPair], { axis: 0 }), g.i64([-1, k, h])]); // [N, k, H]
  const weighted = g.op('Mul', [yPairs, g.op('Unsqueeze', [weights, g.i64([2])])]);
  // Summed with Sum over k slices, not ReduceSum over axis 1: ReduceSum picks its loop by shape,
  // so a lone row ([1, k, H]) was summed in another order than the same row in a batch.
  if (k === 1) return g.op('Reshape', [weighted, g.i64([-1, h])]);
  return g.op('Reshape', [g.op('Sum', g.node('Split', [weighted], k, { axis: 1, num_outputs: k })), g.i64([-1, h])]);
}
