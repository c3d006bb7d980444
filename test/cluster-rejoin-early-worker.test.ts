// Issue 20 item 4: "a bus that is down means retry forever with backoff (also for a worker started
// before its gateway)". A worker started while its `hearth up` (nats-server and gateway) is not
// running waits, says so, and joins by itself once `hearth up` comes up on the URL it was given
// (the port of the last start, kept in the state dir). Real nats-server, CLI processes, openai SDK.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { startUp, tempHome, waitReady } from './helpers/cli.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing, spawnWorker, until } from './helpers/nats.ts';

const skip = natsMissing();

t.test('a worker started before its gateway and nats-server exist joins once they come up', { skip }, async (t) => {
  const model = await tinyCheckpoint();
  const home = tempHome(t, 'hearth-early-');
  const flags = ['--model', model, '--workers', '0'];
  // A first start only to learn the join line (URL and token), as a user copies it; then stopped.
  const first = await startUp(t, flags, { home });
  const natsUrl = /--join (nats:\/\/\S+)/.exec(first.output())?.[1] ?? '';
  const token = readFileSync(path.join(home, 'cluster-token'), 'utf8').trim();
  first.child.kill('SIGTERM');
  await first.exited;

  const w = spawnWorker(t, ['--join', natsUrl, '--cluster', 'default', '--name', 'early', '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G'],
    { HEARTH_TOKEN: token, HEARTH_LOG_PRETTY: 'false' });
  await until(() => w.stderr().includes('cannot be reached yet'), 20_000, `the worker to say it waits\n${w.stderr().slice(-2000)}`);
  // Long enough for several attempts: the worker of before gave up after four.
  await new Promise((r) => setTimeout(r, 6000));
  t.equal(w.proc.exitCode, null, 'the worker waits for the server instead of giving up');
  const waits = w.stderr().split('\n').filter((l) => l.includes('cannot be reached yet')).length;
  t.ok(waits <= 2, `and logs it at a sane rate, not once per attempt (${waits} line(s) in 6 s)`);

  const up = await startUp(t, flags, { home });
  t.equal(/--join (nats:\/\/\S+)/.exec(up.output())?.[1], natsUrl, 'hearth up came back on the URL the worker was given');
  await waitReady(up.origin, 60_000, () => `${up.output()}\n--- worker:\n${w.stderr().slice(-3000)}`);
  const client = new OpenAI({ baseURL: `${up.origin}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000 });
  const r = await client.chat.completions.create({ model: path.basename(model), messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0 });
  t.equal(r.choices[0]?.finish_reason, 'length', 'served by the worker that was there first');
  t.equal(w.proc.exitCode, null, 'which never exited');
  up.child.kill('SIGTERM');
  await up.exited;
});
