import { PassThrough, Writable } from 'node:stream';
import t from 'tap';
import { SSE_DONE, SseWriter, sseData } from '../src/api/sse.ts';

// The SSE writer, socket-free. Frames are read back with an independent event-stream parser written
// from the WHATWG algorithm (lines split on CR, LF or CRLF; `data:` lines joined with LF; a blank line
// dispatches), not with the writer's own code.

function parseEventStream(text: string): { data: string; event: string | null }[] {
  const events: { data: string; event: string | null }[] = [];
  let data: string[] = [];
  let event: string | null = null;
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push({ data: data.join('\n'), event });
      data = [];
      event = null;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    if (field === 'event') event = value;
  }
  return events;
}

async function collect(p: PassThrough): Promise<string> {
  let s = '';
  for await (const c of p) s += String(c);
  return s;
}

t.test('payloads round-trip through the event-stream format, [DONE] last', async (t) => {
  const sink = new PassThrough();
  const text = collect(sink);
  const w = new SseWriter(sink);
  // Strings that would break a naive writer: newlines, CR, a fake frame, U+2028, NUL, emoji.
  const payloads = [
    { choices: [{ delta: { content: 'line1\nline2\r\nline3\r' } }] },
    { choices: [{ delta: { content: 'data: [DONE]\n\n' } }] },
    { s: '\u2028\u2029\u0000 😀 é' },
    { n: 1.5e300, neg: -0, arr: [null, true, false] },
  ];
  for (const p of payloads) await w.send(p);
  w.done();
  w.done(); // idempotent
  const events = parseEventStream(await text);
  t.equal(events.length, payloads.length + 1);
  payloads.forEach((p, i) => t.same(JSON.parse(events[i]!.data), JSON.parse(JSON.stringify(p)), `event ${i}`));
  t.equal(events.at(-1)!.data, '[DONE]');
  t.ok(events.every((e) => e.event === null), 'no named events (OpenAI clients read plain data events)');
});

t.test('an error becomes a data event with an error key, then [DONE]', async (t) => {
  const sink = new PassThrough();
  const text = collect(sink);
  const w = new SseWriter(sink);
  await w.send({ choices: [] });
  w.fail({ error: { message: 'boom', type: 'server_error', param: null, code: null } });
  await w.send({ late: true }); // dropped: the stream is over
  const events = parseEventStream(await text);
  t.equal(events.length, 3);
  t.same(JSON.parse(events[1]!.data), { error: { message: 'boom', type: 'server_error', param: null, code: null } });
  t.equal(events[2]!.data, '[DONE]');
  t.equal(w.open, false);
});

t.test('send waits for drain when the sink is full (backpressure)', async (t) => {
  const chunks: string[] = [];
  let release: (() => void) | null = null;
  const slow = new Writable({
    highWaterMark: 8,
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      release = cb;
    },
  });
  const w = new SseWriter(slow as unknown as PassThrough);
  let sent = false;
  const p = w.send({ big: 'x'.repeat(100) }).then(() => (sent = true));
  await new Promise((r) => setImmediate(r));
  t.equal(sent, false, 'still waiting: the sink has not drained');
  (release as unknown as () => void)();
  await p;
  t.equal(sent, true, 'resolved after drain');
  t.equal(chunks[0], sseData({ big: 'x'.repeat(100) }));
});

t.test('a sink closed by the client stops writes instead of throwing', async (t) => {
  const sink = new PassThrough();
  const w = new SseWriter(sink);
  sink.destroy();
  t.equal(w.open, false);
  await w.send({ a: 1 });
  w.done();
  t.pass('no throw');
});

t.test('frame helpers', async (t) => {
  t.equal(SSE_DONE, 'data: [DONE]\n\n');
  t.equal(sseData({ a: 'b\nc' }), 'data: {"a":"b\\nc"}\n\n');
});
