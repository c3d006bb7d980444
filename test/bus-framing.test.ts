import t from 'tap';
import { decodeMessage, encodeMessage, Framer, Reassembler, subjectMatches, WIRE_VERSION, bin, f32, i32, type StepMsg } from '../src/bus/index.ts';
import { GREEDY } from '../src/sampling/types.ts';

t.test('codec round-trips a step with binary tensors', async (t) => {
  const hidden = Float32Array.from({ length: 5 * 7 }, (_, i) => Math.sin(i));
  const tokens = Int32Array.of(3, 1, 4, 1, 5);
  const msg: StepMsg = {
    v: WIRE_VERSION, t: 'step', epoch: 3, gateway: 'gw-1', seq: 's', stepId: 9, pos: 10, n: 5, tokens: bin(tokens),
    hidden: bin(hidden), promptLen: 10, sampling: GREEDY, wantToken: true, wantLogits: false, fork: null, sentAt: 1.5, hopMs: [0.25], stageMs: [], delayMs: 0,
  };
  const d = decodeMessage(encodeMessage(msg));
  t.ok(d.ok);
  if (!d.ok || d.msg.t !== 'step') return;
  t.same(Array.from(f32(d.msg.hidden as Uint8Array)), Array.from(hidden));
  t.same(Array.from(i32(d.msg.tokens)), [3, 1, 4, 1, 5]);
  t.same(d.msg.sampling, GREEDY);
  t.same(d.msg.hopMs, [0.25]);
});

t.test('codec refuses another wire version and unknown types, naming the sender', async (t) => {
  const other = encodeMessage({ v: WIRE_VERSION + 1, t: 'leave', id: 'n1' } as never);
  const d = decodeMessage(other);
  t.notOk(d.ok);
  if (!d.ok) { t.equal(d.version, WIRE_VERSION + 1); t.equal(d.from, 'n1'); }
  const u = decodeMessage(encodeMessage({ v: WIRE_VERSION, t: 'nope' } as never));
  t.notOk(u.ok);
  t.notOk(decodeMessage(Uint8Array.of(0xc1)).ok, 'garbage is a reason, not a throw');
});

t.test('frames split payloads over max_payload and reassemble them, interleaved', async (t) => {
  const max = 1024;
  const a = new Framer(max);
  const b = new Framer(max);
  const pa = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);
  const pb = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) % 253);
  const fa = a.frames(pa);
  const fb = b.frames(pb);
  t.ok(fa.length > 1 && fb.length > 1, 'both chunked');
  for (const f of [...fa, ...fb]) t.ok(f.byteLength <= max, 'every frame fits');
  const r = new Reassembler();
  const done: Uint8Array[] = [];
  // Interleave the two senders' chunks on one subject.
  for (let i = 0; i < Math.max(fa.length, fb.length); i++) {
    for (const f of [fa[i], fb[i]]) {
      if (f === undefined) continue;
      const out = r.push('s', f);
      if (out !== null) done.push(out);
    }
  }
  t.equal(done.length, 2);
  t.same(Buffer.from(done.find((d) => d.byteLength === 5000) as Uint8Array), Buffer.from(pa));
  t.same(Buffer.from(done.find((d) => d.byteLength === 3000) as Uint8Array), Buffer.from(pb));
  t.equal(r.pending(), 0);
  const small = a.frames(Uint8Array.of(1, 2, 3));
  t.equal(small.length, 1);
  t.same(Array.from(r.push('s', small[0] as Uint8Array) as Uint8Array), [1, 2, 3]);
  t.throws(() => r.push('s', Uint8Array.of(9, 9)), 'malformed frame kind throws');
});

t.test('partial messages of a dead sender expire', async (t) => {
  let now = 0;
  const r = new Reassembler(() => now);
  const fr = new Framer(256).frames(new Uint8Array(1000));
  r.push('s', fr[0] as Uint8Array);
  t.equal(r.pending(), 1);
  now = 60_000;
  r.push('s', new Framer(256).frames(new Uint8Array(1000))[0] as Uint8Array);
  t.equal(r.pending(), 1, 'the stale one was swept, the new one waits');
});

t.test('subject wildcards follow NATS', async (t) => {
  t.ok(subjectMatches('hearth.c.>', 'hearth.c.node.a.step'));
  t.notOk(subjectMatches('hearth.c.>', 'hearth.c'));
  t.ok(subjectMatches('hearth.*.free', 'hearth.c.free'));
  t.notOk(subjectMatches('hearth.*.free', 'hearth.c.d.free'));
  t.notOk(subjectMatches('a.b', 'a.b.c'));
});
