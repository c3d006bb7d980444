import t from 'tap';
import type { Test } from 'tap';
import { MemoryHub, NatsBus, subjects, bin, f32, type Bus, type WireMessage } from '../src/bus/index.ts';
import { startNatsServer } from '../src/cluster/index.ts';
import { isHearthError } from '../src/errors/index.ts';
import { natsMissing, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

function collect(bus: Bus, subject: string): WireMessage[] {
  const got: WireMessage[] = [];
  bus.subscribe(subject, (m) => got.push(m));
  return got;
}

async function relaysBigPayload(t: Test, a: Bus, b: Bus): Promise<void> {
  const got = collect(b, 'hearth.t.>');
  await b.flush();
  // 600 positions × 896 floats ≈ 2.1 MB: twice NATS's default max_payload.
  const hidden = Float32Array.from({ length: 600 * 896 }, (_, i) => (i % 997) / 997);
  a.publish(subjects.free('t'), { t: 'free', seqs: ['x'] });
  a.publish(subjects.step('t', 'n1'), {
    t: 'step', epoch: 1, gateway: 'g', seq: 's', stepId: 1, pos: 0, n: 600, tokens: bin(new Int32Array(600)), hidden: bin(hidden),
    promptLen: 600, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, logitBias: null, seed: 0, topLogprobs: -1 },
    wantToken: true, wantLogits: false, fork: null, sentAt: 0, hopMs: [], stageMs: [], delayMs: 0,
  });
  await a.flush();
  await until(() => got.length === 2, 5000, 'both messages');
  t.equal(got[0]?.t, 'free', 'order kept');
  const step = got[1];
  t.equal(step?.t, 'step');
  if (step?.t === 'step') {
    const got = f32(step.hidden as Uint8Array);
    let same = got.length === hidden.length;
    for (let i = 0; same && i < hidden.length; i++) same = got[i] === hidden[i];
    t.ok(same, 'a 2 MB activation arrives whole and exact');
  }
}



t.test('NATS bus: chunked activations over a real server', { skip }, async (t) => {
  const s = await withNats(t);
  const a = await NatsBus.connect({ servers: s.url, token: s.token, name: 'a' });
  const b = await NatsBus.connect({ servers: s.url, token: s.token, name: 'b' });
  t.teardown(async () => { await a.close(); await b.close(); });
  t.equal(a.maxPayload, 1024 * 1024, 'server default max_payload');
  await relaysBigPayload(t, a, b);
});

t.test('in-process bus keeps the same contract (chunking included)', async (t) => {
  const hub = new MemoryHub();
  await relaysBigPayload(t, hub.bus(), hub.bus());
});

t.test('a client without the right token is refused', { skip }, async (t) => {
  const s = await withNats(t);
  for (const token of ['wrong', undefined]) {
    try {
      await NatsBus.connect({ servers: s.url, name: 'intruder', ...(token !== undefined ? { token } : {}), timeoutMs: 3000 });
      t.fail('connected without the credential');
    } catch (e) {
      t.ok(isHearthError(e, 'HEARTH_ERR_NODE_UNAUTHORIZED'), `refused (${token ?? 'no token'}): ${(e as Error).message}`);
      t.match((e as Error).message, /rejected the credential/);
    }
  }
});

t.test('a nats-server restart is survived: subscriptions come back', { skip }, async (t) => {
  const token = 'restart-token';
  let s = await startNatsServer({ token });
  const port = s.port;
  t.teardown(() => s.stop());
  const a = await NatsBus.connect({ servers: s.url, token, name: 'a' });
  const b = await NatsBus.connect({ servers: s.url, token, name: 'b' });
  t.teardown(async () => { await a.close(); await b.close(); });
  const statuses: string[] = [];
  b.onStatus((st) => statuses.push(st));
  const got = collect(b, subjects.leave('r', 'n'));
  await b.flush();
  a.publish(subjects.leave('r', 'n'), { t: 'leave', id: 'before' });
  await until(() => got.length === 1, 3000, 'message before restart');
  await s.stop();
  s = await startNatsServer({ token, port });
  await until(() => statuses.includes('reconnected'), 10_000, 'reconnect');
  await until(() => {
    a.publish(subjects.leave('r', 'n'), { t: 'leave', id: 'after' });
    return got.some((m) => m.t === 'leave' && m.id === 'after');
  }, 10_000, 'message after restart');
  t.ok(statuses.includes('disconnected'), 'saw the disconnect');
  t.pass('published and received after the server came back');
});
