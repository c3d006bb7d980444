// The decode probe a worker announces (issue 20): onnxruntime's int4 kernel over more weights than a
// CPU cache holds, in a child process; its figure is reused by a worker restarted on the same device
// (a warm restart must not pay ~3 s for it), and not by one with other threads or on another CPU.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { probeDecodeSaved } from '../src/runtime/decode-probe.ts';

t.test('a saved probe is reused on the same device and threads, probed again otherwise', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-probe-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'decode-probe.json');
  const saved = (threads: number, cpu: string, at = Date.now()): void => fs.writeFileSync(file, JSON.stringify({
    threads, cpu, cores: os.availableParallelism(), at, probe: { msPerMb: 123.5, wallMsPerMb: 123.5, mb: 1 },
  }));
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  saved(1, cpu);
  t.equal((await probeDecodeSaved(1, dir)).msPerMb, 123.5, 'same threads, same CPU: the saved figure');
  saved(2, cpu);
  const fresh = await probeDecodeSaved(1, dir);
  t.not(fresh.msPerMb, 123.5, 'other threads: probed again');
  t.ok(fresh.msPerMb > 0 && fresh.msPerMb < 10, `a real figure: ${fresh.msPerMb.toFixed(4)} ms per MB`);
  t.ok(fresh.mb > 32, `over more weights than a 32 MB cache holds (${fresh.mb.toFixed(1)} MB)`);
  t.equal(JSON.parse(fs.readFileSync(file, 'utf8')).probe.msPerMb, fresh.msPerMb, 'and saved');
  saved(1, 'another CPU');
  t.not((await probeDecodeSaved(1, dir)).msPerMb, 123.5, 'another CPU: probed again');
  saved(1, cpu, Date.now() - 8 * 24 * 3600 * 1000);
  t.not((await probeDecodeSaved(1, dir)).msPerMb, 123.5, 'a week old: probed again');
});
