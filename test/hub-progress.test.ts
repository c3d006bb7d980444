// The pull progress bar, driven with a fake clock and a fake stderr (no sockets, no timers).
import t from 'tap';

import { createProgressBar, formatBytes, formatDuration, formatParams } from '../src/hub/index.ts';

function fakeOut(isTTY: boolean): { out: { isTTY: boolean; columns: number; write(s: string): boolean }; text: () => string } {
  const chunks: string[] = [];
  return { out: { isTTY, columns: 120, write: (s: string) => chunks.push(s) > 0 }, text: () => chunks.join('') };
}

t.test('terminal: redrawn bar with bytes, rate and ETA', async (t) => {
  let now = 0;
  const { out, text } = fakeOut(true);
  const bar = createProgressBar(out, () => now);
  bar.start(4_000_000, 1);
  bar.fileStart('model.safetensors', 4_000_000);
  now = 1000;
  bar.bytes(1_000_000);
  const s = text();
  t.match(s, /\r\x1b\[2K/, 'redraws in place');
  t.match(s, /model\.safetensors \[#+-+\]\s+25% 1\.0 MB\/4\.0 MB\s+1\.0 MB\/s\s+ETA 0:03/, `bar: ${JSON.stringify(s.slice(-120))}`);
  // Redraws are throttled: many tiny updates within 100 ms draw once at most.
  const before = text().length;
  for (let i = 0; i < 50; i++) bar.bytes(1);
  t.equal(text().length, before, 'no redraw within 100 ms');
  now = 4000;
  bar.bytes(3_000_000 - 50);
  bar.fileDone('model.safetensors', false);
  bar.finish();
  t.match(text(), /100% 4\.0 MB\/4\.0 MB/);
  t.match(text(), /done: 4\.0 MB in 0:04 \(1\.0 MB\/s\)\n$/);
});

t.test('pipe: plain lines, a bounded number of them', async (t) => {
  let now = 0;
  const { out, text } = fakeOut(false);
  const bar = createProgressBar(out, () => now);
  bar.start(1_000_000, 2);
  bar.fileDone('config.json', true);
  bar.fileStart('a.safetensors', 1_000_000);
  for (let i = 0; i < 1000; i++) {
    now += 1;
    bar.bytes(1000);
  }
  bar.fileDone('a.safetensors', false);
  bar.finish();
  const s = text();
  t.notMatch(s, /\r|\x1b/, 'no control characters');
  t.match(s, /config\.json: already complete\n/);
  const lines = s.split('\n').filter((l) => l.startsWith('a.safetensors:'));
  t.ok(lines.length >= 10 && lines.length <= 13, `one line per 10% (${lines.length})`);
  t.match(lines[lines.length - 1] ?? '', /100% 1\.0 MB\/1\.0 MB/);
});

t.test('formatting helpers', async (t) => {
  t.equal(formatBytes(999), '999 B');
  t.equal(formatBytes(1_500_000), '1.5 MB');
  t.equal(formatBytes(2_000_000_000), '2.0 GB');
  t.equal(formatDuration(59), '0:59');
  t.equal(formatDuration(3 * 3600 + 5 * 60 + 7), '3:05:07');
  t.equal(formatDuration(Number.NaN), '--:--');
  t.equal(formatParams(260_000), '260K');
  t.equal(formatParams(494_032_768), '494M');
  t.equal(formatParams(7_615_616_512), '7.6B');
});
