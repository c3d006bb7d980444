// Issue 25: a sequence's KV grows in place as it lengthens (a resizable ArrayBuffer per layer's K
// and V), so a long prompt never holds a layer's old and new slab at once nor leaves old slabs to
// the garbage collector, and what is held is what the positions in use take (not 1.5x steps).
import t from 'tap';
import { KvGroup } from '../src/runtime/kv-group.ts';
import { KvStore } from '../src/runtime/kv-store.ts';

const shape = { layers: 3, kvHeads: 2, headDim: 4, layout: 'position', maxPositions: 100_000 } as const;
const row = shape.kvHeads * shape.headDim;

/** Rows [pos, pos+n) of a recognisable pattern (value = layer*1e6 + position*10 + element). */
function rows(l: number, pos: number, n: number, v = 0): Float32Array {
  const a = new Float32Array(n * row);
  for (let i = 0; i < a.length; i++) a[i] = l * 1e6 + (pos + Math.floor(i / row)) * 10 + (i % row) + v;
  return a;
}

t.test('a lone sequence grows chunk by chunk in the same buffers, every position kept', async (t) => {
  const kv = new KvStore(shape);
  const { group } = kv.arrange(['a'], 128);
  const buffers = group.k.map((a) => a.buffer).concat(group.v.map((a) => a.buffer));
  let len = 0;
  // Prompt chunks, then decode steps (a step after a long chunk is where 1.5x steps overshoot most).
  for (const n of [128, 128, 128, 1, 1, 500, 3000, 1, 1]) {
    const g = kv.arrange(['a'], len + n).group;
    t.equal(g, group, 'the same group');
    for (let l = 0; l < shape.layers; l++) g.write(l, 0, len, rows(l, len, n), rows(l, len, n, 0.5));
    len += n;
    kv.get('a').len = len;
  }
  const now = group.k.map((a) => a.buffer).concat(group.v.map((a) => a.buffer));
  t.ok(now.every((b, i) => b === buffers[i]), 'no buffer was replaced (grown in place, nothing copied)');
  for (let l = 0; l < shape.layers; l++) {
    t.same(group.past('k', l, len), rows(l, 0, len), `layer ${l} K holds every position written`);
    t.same(group.past('v', l, len), rows(l, 0, len, 0.5), `layer ${l} V too`);
  }
  const perPosition = kv.bytesPerPosition;
  t.ok(kv.reservedBytes() < (len + 64) * perPosition, `held ${kv.reservedBytes()} bytes for ${len} positions: within 64 positions of what they take (geometric steps held up to 1.5x)`);
  t.ok(kv.reservedBytes() >= len * perPosition);
});

t.test('past the reservation (no maxPositions) the slab is replaced once, keeping every position', async (t) => {
  const small = { layers: 2, kvHeads: 2, headDim: 4, layout: 'position' } as const;
  const g = new KvGroup(small, 1, 64);
  const n0 = 4000;
  g.grow(n0);
  for (let l = 0; l < small.layers; l++) g.write(l, 0, 0, rows(l, 0, n0), rows(l, 0, n0, 0.5));
  const before = g.k[0]?.buffer;
  g.grow(9000, n0);
  t.not(g.k[0]?.buffer, before, 'a larger reservation');
  t.ok(g.cap >= 9000 && g.cap < 9000 + 64);
  for (let l = 0; l < small.layers; l++) {
    t.same(g.past('k', l, n0), rows(l, 0, n0), `layer ${l} K kept`);
    t.same(g.past('v', l, n0), rows(l, 0, n0, 0.5), `layer ${l} V kept`);
  }
  t.equal(g.past('k', 0, 9000).length, 9000 * row, 'the new room is there');
});
