// Probe (issue 24): which MatMulNBits forms onnxruntime-node 1.30's CPU EP takes, their error
// against an fp64 reference of the same dequantized weights, and their decode-shaped speed.
// node --import tsx bench/llama-cpp/probe/nbits-probe.ts
import ort from 'onnxruntime-node';
import { GraphBuilder, DT, MS_DOMAIN } from '../../../src/model/onnx/graph.ts';

interface Form { name: string; bits: 4 | 8; block: number; zp: 'none' | 'float' | 'u8'; acc: number }
const K = Number(process.env.K ?? 896), N = Number(process.env.N ?? 4864), T = Number(process.env.T ?? 1);
function rnd(seed: number) { let s = seed >>> 0; return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32); }

async function run(form: Form) {
  const r = rnd(7);
  const { bits, block } = form;
  const blocks = Math.ceil(K / block);
  const per = bits === 8 ? block : block / 2;
  const q = new Uint8Array(N * blocks * block);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * (bits === 8 ? 256 : 16));
  const packed = new Uint8Array(N * blocks * per);
  if (bits === 8) packed.set(q); else for (let i = 0; i < packed.length; i++) packed[i] = q[2 * i]! | (q[2 * i + 1]! << 4);
  const scales = new Float32Array(N * blocks).map(() => 0.01 + 0.02 * r());
  const zpf = new Float32Array(N * blocks).map(() => (form.zp === 'float' ? (bits === 8 ? 128 : 8) * (0.5 + r()) : bits === 8 ? 128 : 8));
  if (form.zp === 'u8') for (let i = 0; i < zpf.length; i++) zpf[i] = Math.floor(r() * (bits === 8 ? 256 : 16));
  const x = new Float32Array(T * K).map(() => r() * 2 - 1);
  // fp64 reference: (q - zp) * s
  const ref = new Float64Array(T * N);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) { let acc = 0; for (let k = 0; k < K; k++) { const b = Math.floor(k / block); acc += x[t * K + k]! * (q[(n * blocks + b) * block + (k % block)]! - zpf[n * blocks + b]!) * scales[n * blocks + b]!; } ref[t * N + n] = acc; }
  const g = new GraphBuilder(null);
  const xi = g.input('x', DT.float, [1, T, K]);
  const ins = [xi, g.init('B', DT.uint8, [N, blocks, per], packed), g.init('S', DT.float, [N * blocks], scales)];
  if (form.zp === 'float') ins.push(g.init('Z', DT.float, [N * blocks], zpf));
  if (form.zp === 'u8') {
    if (bits === 8) ins.push(g.init('Z', DT.uint8, [N * blocks], Uint8Array.from(zpf)));
    else { const zb = Math.ceil(blocks / 2); const z = new Uint8Array(N * zb); for (let n = 0; n < N; n++) for (let b = 0; b < blocks; b++) z[n * zb + (b >> 1)]! |= zpf[n * blocks + b]! << ((b & 1) * 4); ins.push(g.init('Z', DT.uint8, [N * zb], z)); }
  }
  g.node('MatMulNBits', ins, ['y'], { K, N, bits, block_size: block, accuracy_level: form.acc }, MS_DOMAIN);
  g.output('y', DT.float, [1, T, N]);
  const { model, externalData } = g.finish('probe');
  let sess: ort.InferenceSession;
  try { sess = await ort.InferenceSession.create(model, { externalData, intraOpNumThreads: 1, interOpNumThreads: 1 } as ort.InferenceSession.SessionOptions); }
  catch (e) { console.log(`${form.name}: session refused: ${(e as Error).message.split('\n')[0]}`); return; }
  let y: Float32Array;
  try { y = (await sess.run({ x: new ort.Tensor('float32', x, [1, T, K]) })).y!.data as Float32Array; }
  catch (e) { console.log(`${form.name}: run refused: ${(e as Error).message.split('\n')[0]}`); return; }
  let err = 0, mag = 0; for (let i = 0; i < ref.length; i++) { err = Math.max(err, Math.abs(y[i]! - ref[i]!)); mag = Math.max(mag, Math.abs(ref[i]!)); }
  const feeds = { x: new ort.Tensor('float32', x, [1, T, K]) };
  for (let i = 0; i < 5; i++) await sess.run(feeds);
  const reps = 60; const t0 = performance.now(); for (let i = 0; i < reps; i++) await sess.run(feeds); const ms = (performance.now() - t0) / reps;
  console.log(`${form.name.padEnd(28)} max|err|/max|y| ${(err / mag).toExponential(2)}  ${ms.toFixed(3)} ms/run  weight bytes ${packed.byteLength + scales.byteLength + (form.zp === 'none' ? 0 : form.zp === 'float' ? scales.byteLength : 0)}`);
}
const forms: Form[] = [
  { name: 'int4 b128 sym acc4', bits: 4, block: 128, zp: 'none', acc: 4 },
  { name: 'int4 b32 sym acc4', bits: 4, block: 32, zp: 'none', acc: 4 },
  { name: 'int4 b32 sym acc0', bits: 4, block: 32, zp: 'none', acc: 0 },
  { name: 'int4 b32 u4zp acc4', bits: 4, block: 32, zp: 'u8', acc: 4 },
  { name: 'int4 b32 floatzp acc4', bits: 4, block: 32, zp: 'float', acc: 4 },
  { name: 'int4 b32 floatzp acc0', bits: 4, block: 32, zp: 'float', acc: 0 },
  { name: 'int8 b32 sym acc4', bits: 8, block: 32, zp: 'none', acc: 4 },
  { name: 'int8 b32 sym acc0', bits: 8, block: 32, zp: 'none', acc: 0 },
  { name: 'int8 b16 sym acc4', bits: 8, block: 16, zp: 'none', acc: 4 },
  { name: 'int8 b16 sym acc0', bits: 8, block: 16, zp: 'none', acc: 0 },
  { name: 'int8 b32 u8zp acc4', bits: 8, block: 32, zp: 'u8', acc: 4 },
  { name: 'int8 b32 floatzp acc4', bits: 8, block: 32, zp: 'float', acc: 4 },
  { name: 'int8 b32 floatzp acc0', bits: 8, block: 32, zp: 'float', acc: 0 },
];
for (const f of forms) await run(f);
