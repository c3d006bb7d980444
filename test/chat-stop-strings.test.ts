import t from 'tap';
import { createStopMatcher } from '../src/chat/stop-strings.ts';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (r: () => number, s: string, n: number): string => Array.from({ length: n }, () => s[Math.floor(r() * s.length)]).join('');

/**
 * Independent reference: the earliest occurrence of any stop in the text generated so far, by brute
 * force. Generation ends as soon as a stop string is complete, so the reference is applied to the
 * text seen up to each push, not to text that would never be generated.
 */
function refCut(text: string, stops: string[]): number {
  for (let i = 0; i < text.length; i++) if (stops.some((s) => s.length > 0 && text.startsWith(s, i))) return i;
  return -1;
}
/** Independent reference for what may be sent so far: drop the longest tail that starts a stop. */
function refSafe(text: string, stops: string[]): string {
  for (let k = text.length; k > 0; k--) if (stops.some((s) => s.length > k && s.startsWith(text.slice(text.length - k)))) return text.slice(0, text.length - k);
  return text;
}

t.test('random texts, stops and chunkings agree with a brute-force reference', async (t) => {
  const r = rng(11);
  let bad = 0;
  for (let n = 0; n < 3000; n++) {
    const alphabet = r() < 0.5 ? 'ab' : 'abc\n';
    const text = pick(r, alphabet, Math.floor(r() * 40));
    const stops = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(r, alphabet, 1 + Math.floor(r() * 5)));
    const m = createStopMatcher(stops);
    let sent = '';
    let seen = '';
    let stopped = false;
    for (let i = 0; i < text.length && !stopped;) {
      const len = 1 + Math.floor(r() * 4);
      const chunk = text.slice(i, i + len);
      i += len;
      seen += chunk;
      const res = m.push(chunk);
      sent += res.emit;
      stopped = res.stopped;
      const cut = refCut(seen, stops);
      const ok = stopped
        ? cut >= 0 && sent === seen.slice(0, cut) && res.stop !== null && seen.startsWith(res.stop, cut)
        : sent === refSafe(seen, stops) && refCut(seen, stops) < 0;
      if (!ok && bad++ < 3) t.fail(`text ${JSON.stringify(text)} stops ${JSON.stringify(stops)}: sent ${JSON.stringify(sent)} after ${JSON.stringify(seen)}`);
    }
    if (!stopped) sent += m.flush();
    const cut = refCut(seen, stops);
    const want = cut < 0 ? seen : seen.slice(0, cut);
    if (sent !== want && bad++ < 3) t.fail(`final: ${JSON.stringify(text)} ${JSON.stringify(stops)} → ${JSON.stringify(sent)}`);
  }
  t.equal(bad, 0, '3000 random cases: emitted text = text before the first stop, held text never sent early');
});

t.test('a stop string spread over many tokens is never emitted', async (t) => {
  const m = createStopMatcher(['</tool_call>', 'STOP']);
  const pieces = ['Hello', ' <', '/', 'tool', '_', 'call', '>', ' ignored'];
  const out = pieces.map((p) => m.push(p));
  t.same(out.map((o) => o.emit), ['Hello', ' ', '', '', '', '', '', '']);
  t.same(out.map((o) => o.stopped), [false, false, false, false, false, false, true, true]);
  t.equal(out[6]!.stop, '</tool_call>');
  t.equal(m.flush(), '');
});

t.test('false starts are released; flush returns the held tail', async (t) => {
  const m = createStopMatcher(['\n\nUser:']);
  t.same(m.push('one\n'), { emit: 'one', stopped: false, stop: null });
  t.same(m.push('\nUs'), { emit: '', stopped: false, stop: null });
  t.same(m.push('ually'), { emit: '\n\nUsually', stopped: false, stop: null });
  t.same(m.push('!\n\nU'), { emit: '!', stopped: false, stop: null });
  t.equal(m.flush(), '\n\nU');
});

t.test('earliest stop wins; no stops passes everything through', async (t) => {
  const m = createStopMatcher(['world', 'lo w', '']);
  t.same(m.push('hello world'), { emit: 'hel', stopped: true, stop: 'lo w' });
  const none = createStopMatcher([]);
  t.same(none.push('anything'), { emit: 'anything', stopped: false, stop: null });
  t.equal(none.flush(), '');
  const emoji = createStopMatcher(['😀!']);
  t.same(emoji.push('a😀'), { emit: 'a', stopped: false, stop: null });
  t.same(emoji.push('😀'), { emit: '😀', stopped: false, stop: null }, 'astral characters are held whole');
  t.same(emoji.push('!b'), { emit: '', stopped: true, stop: '😀!' });
});
