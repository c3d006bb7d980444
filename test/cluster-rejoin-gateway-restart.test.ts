// Issue 20 item 4, Must show: "Gateway restarted (same flags) while both workers run: both rejoin
// by themselves and a request succeeds within 30 s, with no command typed on the workers."
// `hearth up` (its own nats-server with per-node credentials, the gateway) and two `hearth worker`
// processes that joined with the token, as on two devices; `hearth up` is stopped (its
// nats-server with it) and started again with the same flags and state dir. The new server knows
// none of the workers' nkeys: each worker must join again with the token it kept, and never exit.
// Everything real: nats-server, the CLI processes, the openai SDK.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { BIN, startUp, tempHome, waitReady } from './helpers/cli.ts';
import { repoRoot, tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing, spawnWorker, until, withNats } from './helpers/nats.ts';

const skip = natsMissing();

t.test('hearth up restarted with the same flags: both workers rejoin by themselves', { skip }, async (t) => {
  const model = await tinyCheckpoint();
  const modelId = path.basename(model);
  const home = tempHome(t, 'hearth-rejoin-');
  const flags = ['--model', model, '--workers', '0'];
  const up1 = await startUp(t, flags, { home });
  const natsUrl = /--join (nats:\/\/\S+)/.exec(up1.output())?.[1] ?? '';
  const token = readFileSync(path.join(home, 'cluster-token'), 'utf8').trim();
  const workers = ['w1', 'w2'].map((name) => spawnWorker(t,
    ['--join', natsUrl, '--cluster', 'default', '--name', name, '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G'],
    { HEARTH_TOKEN: token, HEARTH_LOG_PRETTY: 'false' }));
  const ask = async (origin: string): Promise<string | null> => {
    const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000 });
    const r = await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0 });
    return r.choices[0]?.finish_reason ?? null;
  };
  const logs = (): string => workers.map((w, i) => `--- w${i + 1}:\n${w.stderr().slice(-3000)}`).join('\n');
  const names = async (origin: string): Promise<string[]> => {
    const c = await (await fetch(`${origin}/v1/cluster`)).json() as { nodes: { name: string; state: string }[] };
    return c.nodes.filter((n) => n.state !== 'lost').map((n) => n.name).sort();
  };
  const bothIn = async (origin: string, what: string): Promise<void> => {
    const until = Date.now() + 60_000;
    while ((await names(origin)).join() !== 'w1,w2') {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${logs()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await waitReady(up1.origin, 60_000, () => up1.output() + logs());
  await bothIn(up1.origin, 'both workers in the first gateway\'s cluster');
  t.equal(await ask(up1.origin), 'length', 'served with both workers in the cluster before the restart');

  // Stop the gateway and its nats-server (what a reboot, an upgrade or Ctrl-C + start does).
  up1.child.kill('SIGTERM');
  const { code } = await up1.exited;
  t.equal(code, 0, 'the first hearth up stopped cleanly');
  await until(() => workers.every((w) => w.stderr().includes('NATS disconnected')), 45_000, 'both workers to see the server gone')
    .catch((e: unknown) => { throw new Error(`${(e as Error).message}\n${logs()}`); });

  const t0 = Date.now();
  const up2 = await startUp(t, flags, { home });
  t.equal(/--join (nats:\/\/\S+)/.exec(up2.output())?.[1], natsUrl, 'same flags, same state dir: the same NATS URL (the port of the last start)');
  await waitReady(up2.origin, 60_000, () => up2.output() + logs());
  t.equal(await ask(up2.origin), 'length', 'a request through the openai SDK succeeds after the restart');
  t.comment(`restart to a served request: ${Date.now() - t0} ms (Must show: within 30 s)`);

  await bothIn(up2.origin, 'both workers in the new gateway\'s cluster');
  t.same(await names(up2.origin), ['w1', 'w2'], 'the new gateway knows both workers');
  workers.forEach((w, i) => {
    t.equal(w.proc.exitCode, null, `w${i + 1} never exited`);
    t.equal(w.proc.signalCode, null, `w${i + 1} was not killed`);
    t.match(w.stderr(), /joining again with the cluster token/, `w${i + 1} joined again with the token it kept`);
    t.match(w.stderr(), /admitted again by the gateway/, `w${i + 1} got a new credential`);
    t.notMatch(w.stderr(), /exiting/, `w${i + 1} never said it was leaving`);
  });
  up2.child.kill('SIGTERM');
  await up2.exited;
});

// `hearth gateway` against a nats-server of the operator's own (one shared token, no join user):
// the server stays up, the gateway process is replaced; the workers' connections never drop, and
// they must answer the new gateway's hello and be planned again.
t.test('hearth gateway restarted against the same nats-server: both workers are planned again', { skip }, async (t) => {
  const model = await tinyCheckpoint();
  const modelId = path.basename(model);
  const nats = await withNats(t, { token: 'gateway-restart-token-0123456789' });
  const gateway = async (): Promise<{ origin: string; stop: () => Promise<number | null>; out: () => string }> => {
    const child = spawn(process.execPath, [BIN, 'gateway', '--nats', nats.url, '--model', model, '--port', '0', '--host', '127.0.0.1'], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HEARTH_TOKEN: nats.token, HEARTH_LOG_PRETTY: 'false', HEARTH_CLUSTER: 'default' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    await until(() => /OpenAI API at (http:\/\/\S+?)\/v1/.test(out) || child.exitCode !== null, 60_000, 'hearth gateway to listen');
    const origin = /OpenAI API at (http:\/\/\S+?)\/v1/.exec(out)?.[1];
    if (origin === undefined) throw new Error(`hearth gateway did not start:\n${out.slice(-3000)}`);
    return { origin, out: () => out, stop: async () => { child.kill('SIGTERM'); return exited; } };
  };
  const g1 = await gateway();
  const workers = ['g1', 'g2'].map((name) => spawnWorker(t,
    ['--join', nats.url, '--cluster', 'default', '--name', name, '--model', model, '--threads', '1', '--speed', '10', '--memory', '1G'],
    { HEARTH_TOKEN: nats.token, HEARTH_LOG_PRETTY: 'false' }));
  const logs = (): string => workers.map((w, i) => `--- g${i + 1}:\n${w.stderr().slice(-3000)}`).join('\n');
  await waitReady(g1.origin, 60_000, () => g1.out() + logs());
  await until(() => workers.every((w) => w.stderr().includes('waiting for an assignment')), 60_000, 'both workers on the bus');
  t.equal(await g1.stop(), 0, 'the first gateway stopped cleanly');
  const g2 = await gateway();
  await waitReady(g2.origin, 60_000, () => g2.out() + logs());
  const client = new OpenAI({ baseURL: `${g2.origin}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60_000 });
  const r = await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0 });
  t.equal(r.choices[0]?.finish_reason, 'length', 'a request through the openai SDK succeeds on the new gateway');
  const cluster = await (await fetch(`${g2.origin}/v1/cluster`)).json() as { nodes: { name: string }[] };
  t.same(cluster.nodes.map((n) => n.name).sort(), ['g1', 'g2'], 'the new gateway planned both workers');
  workers.forEach((w, i) => t.equal(w.proc.exitCode, null, `g${i + 1} never exited`));
  await g2.stop();
});
