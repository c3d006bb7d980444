// One decode step's attention products over a long fp32 past, every layer of a shape, in the KV
// layouts a graph could read (issue 25: decode at 8k–32k is these products, ~70% of a token).
// Each variant is one onnxruntime session whose graph holds only the products (and the softmax
// between them) for all layers; they are checked against the first variant and timed interleaved.
// Facts and figures go to ../shared/ONNXRUNTIME.md ("Decode attention at long context").
//
//   node --import tsx bench/attention-products.ts [--positions 8192] [--threads 2] [--spin 0|1]
//        [--steps 20] [--variants now,per-head,blocked-v,k-only-now,k-only-per-head,v-only-per-head,v-only-blocked]
//
// Layouts (past of one sequence, one layer; Hkv KV heads of D, G query heads per KV head):
//   now        position-major [P, 1, Hkv, D] (hearth's cache slab): FusedMatMul reads K as
//              [Hkv, D, P] (transB + transBatchB) and V as [Hkv, P, D] (transBatchB); the G query
//              rows are the small side, so MLAS packs (copies) the whole past into its B panels.
//   per-head   one [P, D] slab per KV head: scores^T [P, G] = K_h · q_hᵀ with K_h as the streamed
//              A operand (nothing packed but q), softmax over P, then probs [G, P] · V_h (V packed).
//   blocked-v  per-head K as above; V_h stored transposed in blocks of 64 positions [P/64, D, 64]
//              (appendable in place): Σ_blocks V_bᵀ · probs_b, a batched product with V as A.

import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { DT, GraphBuilder, MS_DOMAIN } from '../src/model/onnx/graph.ts';

const { values } = parseArgs({
  options: {
    positions: { type: 'string', default: '8192' },
    threads: { type: 'string', default: '2' },
    spin: { type: 'string', default: '0' },
    steps: { type: 'string', default: '20' },
    variants: { type: 'string', default: 'now,per-head,blocked-v,k-only-now,k-only-per-head,v-only-per-head,v-only-blocked' },
    layers: { type: 'string', default: '24' },
    'kv-heads': { type: 'string', default: '2' },
    groups: { type: 'string', default: '7' },
    'head-dim': { type: 'string', default: '64' },
  },
});
const VARIANTS = ['now', 'per-head', 'blocked-v', 'k-only-now', 'k-only-per-head', 'v-only-per-head', 'v-only-blocked'] as const;
type Variant = (typeof VARIANTS)[number];
const P = Number(values.positions);
const L = Number(values.layers);
const HKV = Number(values['kv-heads']);
const G = Number(values.groups);
const D = Number(values['head-dim']);
const BLOCK = 64;
if (P % BLOCK !== 0) throw new Error(`--positions must be a multiple of ${BLOCK}`);
const variants = values.variants.split(',') as Variant[];
for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (one of ${VARIANTS.join(', ')})`);
const scale = 1 / Math.sqrt(D);

/** The graph of one variant: inputs q [Hkv, G, D] and each layer's past in every layout; outputs [Hkv, G, D] per layer. */
function graph(v: Variant): Uint8Array {
  const g = new GraphBuilder();
  const q = g.input('q', DT.float, [1, HKV, G, D]);
  const qScaledT = g.op('Mul', [g.op('Transpose', [q], { perm: [0, 1, 3, 2] }), g.f32(scale)]); // [1,Hkv,D,G]
  for (let l = 0; l < L; l++) {
    const k = g.input(`k${l}`, DT.float, ['P', 1, HKV, D]);
    const val = g.input(`v${l}`, DT.float, ['P', 1, HKV, D]);
    const kh = Array.from({ length: HKV }, (_, h) => g.input(`k${l}_${h}`, DT.float, ['P', D]));
    const vh = Array.from({ length: HKV }, (_, h) => g.input(`v${l}_${h}`, DT.float, ['P', D]));
    const vb = Array.from({ length: HKV }, (_, h) => g.input(`vb${l}_${h}`, DT.float, ['NB', D, BLOCK]));
    const qT = (h: number): string => g.op('Reshape', [g.op('Gather', [qScaledT, g.i64([h])], { axis: 1 }), g.i64([D, G])]); // [D,G]
    // A stand-in for probabilities where a variant times one product alone: G columns of the past.
    const fakeProbsT = (h: number): string => g.op('Slice', [kh[h]!, g.i64([0]), g.i64([G]), g.i64([1])]); // [P,G]
    const perHead = (f: (h: number) => string): string => g.op('Concat', Array.from({ length: HKV }, (_, h) => g.op('Reshape', [f(h), g.i64([1, 1, G, D])])), { axis: 1 });
    const byBlocks = (h: number, probsT: string): string => {
      const c = g.op('MatMul', [vb[h]!, g.op('Reshape', [probsT, g.i64([-1, BLOCK, G])])]); // [NB,D,G]
      return g.op('Transpose', [g.op('ReduceSum', [c, g.i64([0])], { keepdims: 0 })], { perm: [1, 0] }); // [G,D]
    };
    let out: string;
    switch (v) {
      case 'now': {
        const s = g.op('FusedMatMul', [q, k], { transB: 1, transBatchB: 1, alpha: { float: scale } }, MS_DOMAIN);
        out = g.op('FusedMatMul', [g.op('Softmax', [s], { axis: -1 }), val], { transBatchB: 1 }, MS_DOMAIN);
        break;
      }
      case 'per-head':
        out = perHead((h) => g.op('MatMul', [g.op('Softmax', [g.op('Transpose', [g.op('MatMul', [kh[h]!, qT(h)])], { perm: [1, 0] })], { axis: -1 }), vh[h]!]));
        break;
      case 'blocked-v':
        out = perHead((h) => byBlocks(h, g.op('Softmax', [g.op('MatMul', [kh[h]!, qT(h)])], { axis: 0 })));
        break;
      case 'k-only-now':
        out = g.op('Slice', [g.op('FusedMatMul', [q, k], { transB: 1, transBatchB: 1, alpha: { float: scale } }, MS_DOMAIN), g.i64([0]), g.i64([D]), g.i64([3])]);
        break;
      case 'k-only-per-head':
        out = perHead((h) => g.op('Transpose', [g.op('Slice', [g.op('MatMul', [kh[h]!, qT(h)]), g.i64([0]), g.i64([D]), g.i64([0])])], { perm: [1, 0] }));
        break;
      case 'v-only-per-head':
        out = perHead((h) => g.op('MatMul', [g.op('Transpose', [fakeProbsT(h)], { perm: [1, 0] }), vh[h]!]));
        break;
      case 'v-only-blocked':
        out = perHead((h) => byBlocks(h, fakeProbsT(h)));
        break;
    }
    g.node('Identity', [out], [`o${l}`]);
    g.output(`o${l}`, DT.float, [1, HKV, G, D]);
  }
  return g.finish(v).model;
}

let seed = 7;
const rand = (n: number): Float32Array => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = seed / 2 ** 32 - 0.5;
  }
  return a;
};
const feeds: Record<string, ort.Tensor> = { q: new ort.Tensor('float32', rand(HKV * G * D), [1, HKV, G, D]) };
for (let l = 0; l < L; l++) {
  for (const kv of ['k', 'v'] as const) {
    const slab = rand(P * HKV * D);
    feeds[`${kv}${l}`] = new ort.Tensor('float32', slab, [P, 1, HKV, D]);
    for (let h = 0; h < HKV; h++) {
      const head = new Float32Array(P * D);
      for (let p = 0; p < P; p++) head.set(slab.subarray((p * HKV + h) * D, (p * HKV + h + 1) * D), p * D);
      feeds[`${kv}${l}_${h}`] = new ort.Tensor('float32', head, [P, D]);
      if (kv === 'v') {
        const blocked = new Float32Array(P * D);
        for (let p = 0; p < P; p++) for (let d = 0; d < D; d++) blocked[(Math.floor(p / BLOCK) * D + d) * BLOCK + (p % BLOCK)] = head[p * D + d]!;
        feeds[`vb${l}_${h}`] = new ort.Tensor('float32', blocked, [P / BLOCK, D, BLOCK]);
      }
    }
  }
}

void (async () => {
  const options = { intraOpNumThreads: Number(values.threads), interOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: values.spin } } } } as ort.InferenceSession.SessionOptions;
  const sessions = new Map<Variant, ort.InferenceSession>();
  for (const v of variants) sessions.set(v, await ort.InferenceSession.create(graph(v), options));
  const results = new Map<Variant, ort.InferenceSession.OnnxValueMapType>();
  for (const v of variants) results.set(v, await sessions.get(v)!.run(feeds));
  const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  for (let s = 0; s < Number(values.steps); s++) {
    for (const v of variants) {
      const t = performance.now();
      await sessions.get(v)!.run(feeds);
      times.get(v)!.push(performance.now() - t);
    }
  }
  const kvMb = (2 * L * P * HKV * D * 4) / 2 ** 20;
  console.log(`${L} layers, ${P} positions, ${HKV} KV heads x ${G} query heads x ${D}: ${kvMb.toFixed(0)} MiB of fp32 K+V per step; ${values.threads} threads, spinning ${values.spin === '1' ? 'on' : 'off'}`);
  const base = variants[0]!;
  for (const v of variants) {
    const t = times.get(v)!.sort((a, b) => a - b);
    let diff = 0;
    const sameOp = v.startsWith('k-only') === base.startsWith('k-only') && v.startsWith('v-only') === base.startsWith('v-only');
    if (sameOp && !v.includes('only')) {
      for (let l = 0; l < L; l++) {
        const a = results.get(base)![`o${l}`]!.data as Float32Array;
        const b = results.get(v)![`o${l}`]!.data as Float32Array;
        for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      }
    }
    const check = sameOp && !v.includes('only') ? `, max |diff| vs ${base} ${diff.toExponential(1)}` : '';
    console.log(`${v.padEnd(16)} median ${t[t.length >> 1]!.toFixed(2)} ms, fastest ${t[0]!.toFixed(2)} ms per step, ÷ ${base} ${(t[t.length >> 1]! / times.get(base)!.sort((a, b) => a - b)[times.get(base)!.length >> 1]!).toFixed(2)}${check}`);
  }
})();
