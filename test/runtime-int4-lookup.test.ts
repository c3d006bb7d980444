// The int4 token table of int4 graphs: GatherBlockQuantized over quantizeInt4's bytes (MatMulNBits'
// layout, read as [V, K/2]) returns exactly the dequantized rows, and a tied head reading the same
// bytes as [n, K/32, 16] slices gives the logits of the dequantized table.
import ort from 'onnxruntime-node';
import t from 'tap';
import { DT, GraphBuilder, MS_DOMAIN } from '../src/model/onnx/graph.ts';
import { dequantizeInt4, quantizeInt4 } from '../src/model/quant-int4.ts';

t.test('GatherBlockQuantized on quantizeInt4 bytes = dequantized rows; a view of them feeds MatMulNBits', async (t) => {
  const v = 40;
  const k = 64;
  const w = Float32Array.from({ length: v * k }, (_, i) => Math.sin(i * 0.73) * (1 + (i % 3)));
  const m = quantizeInt4(w, v, k);
  const deq = dequantizeInt4(m);
  const g = new GraphBuilder();
  const ids = g.input('ids', DT.int32, [1, 3]);
  const x = g.input('x', DT.float, [1, k]);
  const table = g.init('table', DT.uint8, [v, m.blocks * 16], m.packed);
  const scales = g.init('scales', DT.float, [v, m.blocks], m.scales);
  g.node('GatherBlockQuantized', [table, ids, scales], ['rows'], { gather_axis: 0, quantize_axis: 1, block_size: 32, bits: 4 }, MS_DOMAIN);
  g.output('rows', DT.float, [1, 3, k]);
  // Rows [8, 24) of the same bytes as a MatMulNBits weight.
  const r0 = 8;
  const r1 = 24;
  const b = g.view('b', table, DT.uint8, [r1 - r0, m.blocks, 16], r0 * m.blocks * 16, (r1 - r0) * m.blocks * 16);
  const s = g.view('s', scales, DT.float, [(r1 - r0) * m.blocks], r0 * m.blocks * 4, (r1 - r0) * m.blocks * 4);
  g.node('MatMulNBits', [x, b, s], ['y'], { K: k, N: r1 - r0, bits: 4, block_size: 32, accuracy_level: 0 }, MS_DOMAIN);
  g.output('y', DT.float, [1, r1 - r0]);
  t.throws(() => g.view('bad', table, DT.uint8, [1], v * m.blocks * 16, 1), RangeError, 'a view past the end is refused');
  const { model, externalData } = g.finish('lookup');
  const session = await ort.InferenceSession.create(model, { externalData });
  t.teardown(() => session.release());
  const want = [3, 0, 39];
  const xs = Float32Array.from({ length: k }, (_, i) => Math.cos(i * 0.21));
  const out = await session.run({ ids: new ort.Tensor('int32', Int32Array.from(want), [1, 3]), x: new ort.Tensor('float32', xs, [1, k]) });
  const rows = out['rows']?.data as Float32Array;
  want.forEach((id, i) => t.same(Array.from(rows.subarray(i * k, (i + 1) * k)), Array.from(deq.subarray(id * k, (id + 1) * k)), `row ${id} is the dequantized row`));
  const y = out['y']?.data as Float32Array;
  let worst = 0;
  for (let j = 0; j < r1 - r0; j++) {
    let acc = 0;
    for (let i = 0; i < k; i++) acc += (xs[i] as number) * (deq[(r0 + j) * k + i] as number);
    worst = Math.max(worst, Math.abs(acc - (y[j] as number)));
  }
  t.ok(worst < 1e-3, `head slice over the table's bytes: max |ORT - x·dequant(W)ᵀ| = ${worst.toExponential(2)}`);
});
