// Issue 19 item 9: every field a node states about itself is checked at the codec (types,
// lengths, printable text, finite numbers in range), and what reaches `hearth status` is printed
// with its control characters escaped, whatever its type.
import t from 'tap';
import http from 'node:http';
import { WIRE_VERSION, decodeMessage, encodeMessage } from '../src/bus/index.ts';
import { runCli } from './helpers/cli.ts';

const announce = { v: WIRE_VERSION, t: 'announce', id: 'w1-abc', name: 'w1', memory: 2 ** 30, freeMemory: 2 ** 29, threads: 2, speed: 10, hasModel: false, provider: 'cpu', totalMemory: 2 ** 33 };
const heartbeat = { v: WIRE_VERSION, t: 'heartbeat', id: 'w1-abc', epoch: 3, state: 'ready', kvBytes: 0, weightBytes: 10, freeMemory: 1, tokS: 12.5, stepMs: 3, stepRange: [0, 2] };
const decodes = (m: Record<string, unknown>): boolean => decodeMessage(encodeMessage(m as never)).ok;

t.test('the codec drops membership messages with bad fields', async (t) => {
  t.ok(decodes(announce), 'a well-formed announce passes');
  t.ok(decodes(heartbeat), 'a well-formed heartbeat passes');
  const badAnnounce: Record<string, unknown> = {
    name: '\u001b[2J\u001b[31mpwned', memory: Number.NaN, freeMemory: -1, threads: 0, speed: Number.POSITIVE_INFINITY, hasModel: 'yes',
    provider: 'cpu\u0007', totalMemory: '8G', id: 'a.b',
  };
  for (const [k, v] of Object.entries(badAnnounce)) {
    const d = decodeMessage(encodeMessage({ ...announce, [k]: v } as never));
    t.notOk(d.ok, `announce.${k} = ${JSON.stringify(v)} is dropped`);
    if (!d.ok) t.match(d.reason, new RegExp(`bad field ${k}`), `and the reason names ${k}`);
  }
  t.notOk(decodes({ ...announce, name: 'x'.repeat(10_000) }), 'a 10,000-character name is dropped');
  t.notOk(decodes({ ...announce, name: { toString: null } }), 'a name that is a map is dropped');
  t.notOk(decodes({ ...announce, name: 'a\u202Eb' }), 'a bidi override in a name is dropped');
  t.ok(decodes({ ...announce, name: 'Wohnzimmer-PC (Küche) 🖥' }), 'ordinary non-ASCII names pass');
  for (const [k, v] of Object.entries({ tokS: 'fast', epoch: 1.5, state: 'evil', kvBytes: null, stepRange: [3, 1], stepMs: Number.NaN })) {
    t.notOk(decodes({ ...heartbeat, [k]: v }), `heartbeat.${k} = ${JSON.stringify(v)} is dropped`);
  }
  t.notOk(decodes({ v: WIRE_VERSION, t: 'loaded', id: 'w1', epoch: 1, ok: 'false', error: null, weightBytes: 0 }), 'loaded.ok must be a boolean');
  t.notOk(decodes({ v: WIRE_VERSION, t: 'leave', id: { toString: null } }), 'leave.id must be an id');
  t.notOk(decodes({ v: WIRE_VERSION, t: 'join', id: 'x', name: 'x', nkey: 'U\u001b' }), 'join.nkey must be an nkey');
});

t.test('`hearth status` prints relayed text escaped and survives wrong types', async (t) => {
  // A gateway (of another version, or relaying whatever it got) answering /v1/cluster.
  const body = {
    epoch: '\u001b]0;title\u0007', model: { id: 'm\u001b[5m', numLayers: { toString: null } },
    forecast: { objective: '\u001b[31m', predictedTokS: 'fast', measuredTokS: null },
    nodes: [
      { id: 'a', name: '\u001b[2J\u001b[31mevil\r\nnode', state: 'ready', range: [0, 'x'], memory: { offered: 'lots', weights: null }, provider: { toString: null }, threads: '8', tokS: 'fast', msPerLayer: {}, linkMs: '1', idleReason: 'idle \u001b[0m' },
      { id: 'b', name: { toString: null }, state: null, range: null, memory: null, tokS: 3.25 },
      null,
      'junk',
    ],
  };
  const server = http.createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(body)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const addr = server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
  const out = await runCli(['status', '--url', url]);
  t.equal(out.code, 0, `exits 0 (stderr: ${out.stderr.slice(0, 500)})`);
  // eslint-disable-next-line no-control-regex
  t.notMatch(out.stdout, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'no control character but newlines reaches the terminal');
  t.match(out.stdout, /\\u001b\[2J\\u001b\[31mevil\\u000d\\u000anode/, 'the name is shown, escaped');
  t.match(out.stdout, /\nb +- /, 'a name that is not text shows as the id');
  t.match(out.stdout, /3\.3|3\.2/, 'a well-typed field of the same row still shows');
});
