// `hearth up` as a process, the way people run it (issue 13 items 1 and 6, issue 8 items 5–7):
// Ctrl-C (SIGINT to the whole process group) lets a running stream finish; the nats-server it
// supervises comes back after a kill; the cluster token never shows on a worker's command line;
// with no worker the API says so at once (with the join line), and a worker of another cluster
// says that no gateway of its cluster is there. Real nats-server, gateway, workers, openai SDK.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { childrenOf, killGroup, processesUnder, startUp, waitReady } from './helpers/cli.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing, spawnWorker } from './helpers/nats.ts';

const skip = natsMissing();

t.test('npm start with 2 local workers', { skip }, async (t) => {
  const model = await tinyCheckpoint();
  // A generous drain limit: on a loaded machine the 300-token stream may take longer than the
  // default 10 s, and the drain (not its limit) is under test.
  const up = await startUp(t, ['--model', model, '--workers', '2'], { ready: true, npmStart: true, env: { HEARTH_SERVER_DRAIN_MS: '120000' } });
  const client = new OpenAI({ baseURL: `${up.origin}/v1`, apiKey: 'none', maxRetries: 0 });
  const modelId = path.basename(model);
  const token = readFileSync(path.join(up.home, 'cluster-token'), 'utf8').trim();
  const upPid = up.upPid();

  await t.test('the token is on no command line: workers get it by environment (8.6)', async (t) => {
    const kids = childrenOf(upPid);
    const workers = kids.filter((p) => p.cmdline.includes(' worker '));
    t.equal(workers.length, 2, 'two worker processes');
    for (const w of workers) {
      t.notMatch(w.cmdline, token, `worker ${w.pid}: /proc/PID/cmdline holds no token`);
      t.notMatch(w.cmdline, /--token/, 'and no --token flag');
    }
    const nats = kids.find((p) => p.comm === 'nats-server');
    t.ok(nats, 'nats-server is a child of hearth up');
    t.notMatch(nats?.cmdline ?? '', token, 'nor on the nats-server command line');
    t.match(up.output(), `HEARTH_TOKEN=${token} ./hearth worker --join nats://127.0.0.1:`, 'the printed join line runs this checkout with the token in the environment');
    t.notMatch(up.output(), /npx hearth/, 'never `npx hearth` (a stranger\'s npm package)');
  });

  await t.test('nats-server killed: restarted on the same port, logged, requests work again (8.5)', async (t) => {
    const before = childrenOf(upPid).find((p) => p.comm === 'nats-server');
    if (before === undefined) throw new Error('no nats-server');
    const conf = /-c (\S+)/.exec(before.cmdline)?.[1] ?? '';
    t.ok(conf.startsWith(path.join(up.home, 'run')), `its config lives in the state dir (${conf}), not /tmp`);
    t.equal(statSync(conf).mode & 0o777, 0o600, 'config file is 0600');
    const port = /nats:\/\/127\.0\.0\.1:(\d+)/.exec(up.output())?.[1];
    process.kill(before.pid, 'SIGKILL');
    await up.waitFor(/nats-server exited unexpectedly; restarting it on the same port/, 10_000);
    await up.waitFor(/nats-server restarted/, 15_000);
    const after = childrenOf(upPid).find((p) => p.comm === 'nats-server');
    t.ok(after !== undefined && after.pid !== before.pid, 'a new nats-server process');
    t.equal(/-c (\S+)/.exec(after?.cmdline ?? '')?.[1], conf, 'same config file');
    const ports = readdirSync(path.dirname(conf)).find((f) => f.endsWith('.ports'));
    const reported = JSON.parse(readFileSync(path.join(path.dirname(conf), ports ?? 'x'), 'utf8')) as { nats: string[] };
    t.match(reported.nats[0] ?? '', `:${port}`, `listens on the same port ${port}`);
    await waitReady(up.origin, 60_000, up.output);
    const r = await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0 });
    t.equal(r.choices[0]?.finish_reason, 'length', 'a completion after the restart');
  });

  await t.test('Ctrl-C (SIGINT to the process group) drains: the stream in flight finishes (13.1)', async (t) => {
    const stream = await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 300, temperature: 0, stream: true });
    let chunks = 0;
    let afterSignal = 0;
    let signalled = false;
    let finish: string | null = null;
    let error: unknown = null;
    try {
      for await (const c of stream) {
        if ((c.choices[0]?.delta.content ?? '') !== '') chunks++;
        if (signalled) afterSignal++;
        finish = c.choices[0]?.finish_reason ?? finish;
        if (chunks === 1 && !signalled) {
          signalled = true;
          // What a terminal does on Ctrl-C: the whole foreground group (npm, sh, hearth up), and npm
          // forwards it to hearth up once more.
          killGroup(up.child, 'SIGINT');
        }
      }
    } catch (e) {
      error = e;
    }
    t.equal(error, null, 'no error in the stream');
    t.ok(signalled && afterSignal > 10, `the stream went on after the signal (${afterSignal} chunks)`);
    t.ok(finish === 'length' || finish === 'stop', `it finished normally (${finish})`);
    const { code, signal } = await up.exited;
    // npm re-raises the signal on itself once its script has exited (@npmcli/run-script).
    t.ok(code === 0 || signal === 'SIGINT', `npm start ended (code ${code}, signal ${signal})`);
    t.notMatch(up.output(), /stopping at once/, 'the one Ctrl-C, delivered twice (terminal + npm), is not taken for two');
    t.match(up.output(), /shutting down: running streams finish/, 'hearth up drained');
    await new Promise((r) => setTimeout(r, 500));
    t.same(processesUnder(up.home).map((p) => p.cmdline), [], 'workers and nats-server are gone');
    t.same(readdirSync(path.join(up.home, 'run')), [], 'the nats-server folder is removed');
  });
});

t.test('hearth up with no worker', { skip }, async (t) => {
  const model = await tinyCheckpoint();
  const up = await startUp(t, ['--model', model, '--workers', '0']);
  const client = new OpenAI({ baseURL: `${up.origin}/v1`, apiKey: 'none', maxRetries: 0 });
  const modelId = path.basename(model);
  const token = readFileSync(path.join(up.home, 'cluster-token'), 'utf8').trim();
  const natsUrl = /--join (nats:\/\/\S+)/.exec(up.output())?.[1] ?? '';
  const ask = async (): Promise<{ status: number; message: string; ms: number }> => {
    const t0 = Date.now();
    try {
      await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
      return { status: 200, message: '', ms: Date.now() - t0 };
    } catch (e) {
      const err = e as { status?: number; message?: string };
      return { status: err.status ?? 0, message: err.message ?? '', ms: Date.now() - t0 };
    }
  };

  await t.test('never a worker: not ready, and requests fail at once with the join line (13.6)', async (t) => {
    const ready = await fetch(`${up.origin}/ready`);
    t.equal(ready.status, 503, '/ready says 503');
    await new Promise((r) => setTimeout(r, 3500)); // past the start-up grace
    const r = await ask();
    t.equal(r.status, 503);
    t.ok(r.ms < 3000, `answered in ${r.ms} ms, not after a 30 s wait`);
    t.match(r.message, /no worker has joined yet; start one: HEARTH_TOKEN=<token> \.\/hearth worker --join nats:\/\/127\.0\.0\.1:\d+ --cluster default/);
    t.notMatch(r.message, token, 'the API never shows the cluster token');
    const cluster = (await (await fetch(`${up.origin}/v1/cluster`)).json()) as { live: boolean; nodes: unknown[]; join: { command: string } };
    t.equal(cluster.live, false);
    t.same(cluster.nodes, []);
    t.match(cluster.join.command, /^HEARTH_TOKEN=<token> \.\/hearth worker --join nats:\/\//, '/v1/cluster carries the join line for the page');
  });

  await t.test('a worker of another --cluster says no gateway of it was heard from (8.7)', async (t) => {
    const w = spawnWorker(t, ['--join', natsUrl, '--cluster', 'other', '--name', 'stray', '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token });
    const until = Date.now() + 20_000;
    while (!w.stderr().includes('no gateway of cluster \\"other\\" has been heard from') && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    t.match(w.stderr(), 'no gateway of cluster \\"other\\" has been heard from', 'the worker says so');
    t.match(w.stderr(), /Is a gateway running with this cluster name\?/);
    w.kill('SIGTERM');
    await w.exited;
  });

  await t.test('after the only worker left: the message does not name it (13.6)', async (t) => {
    const w = spawnWorker(t, ['--join', natsUrl, '--cluster', 'default', '--name', 'visitor-42', '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token });
    await waitReady(up.origin, 60_000, () => w.stderr());
    t.equal((await ask()).status, 200, 'served while it was there');
    w.kill('SIGTERM');
    await w.exited;
    await new Promise((r) => setTimeout(r, 500));
    t.equal((await fetch(`${up.origin}/ready`)).status, 503, 'not ready once it left');
    const r = await ask();
    t.equal(r.status, 503);
    t.match(r.message, /no worker is connected now/);
    t.notMatch(r.message, /visitor-42/, 'the departed worker is not named');
  });
});
