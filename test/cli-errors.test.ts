// The real `hearth` command on the mistakes newcomers make (issue 13 items 2, 4, 7, 8): a mistyped
// flag, a bad value, a busy port, --nats-host without a nats-server, a wrong --model path, CUDA
// without its build. Each must end the process with one line that says what is wrong and what to
// do — no stack trace, nothing left running, nothing left in the state dir or /tmp.
import t from 'tap';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processesUnder, runCli, tempHome, type CliRun } from './helpers/cli.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';

/** The error's line on stderr (the demo notice may come before it); a stack trace fails. */
function errorLine(r: CliRun): string {
  if (/\n\s+at .+:\d+:\d+/.test(r.stderr)) return `STACK TRACE: ${r.stderr}`;
  const lines = r.stderr.trim().split('\n').filter((l) => /^hearth( \w[\w-]*)?: /.test(l));
  return lines[lines.length - 1] ?? `NO ERROR LINE: ${r.stderr.slice(-500)}`;
}

async function holdPort(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as { port: number }).port;
}

t.test('a mistyped flag names the closest one and --help (13.7)', async (t) => {
  const r = await runCli(['up', '--prot', '8092']);
  t.equal(r.code, 2, 'exit code 2 (usage)');
  t.equal(errorLine(r), 'hearth up: unknown flag --prot; did you mean --port? (see hearth up --help)');
  t.equal(r.stderr.trim().split('\n').length, 1, 'exactly one line');

  const w = await runCli(['worker', '--jion', 'nats://127.0.0.1:1']);
  t.equal(w.code, 2);
  t.match(errorLine(w), /unknown flag --jion; did you mean --join\?.*hearth worker --help/);

  const c = await runCli(['stauts']);
  t.equal(c.code, 2);
  t.match(errorLine(c), /unknown command "stauts"; did you mean "status"\?/);
});

t.test('a bad value says which option, the allowed range and where it came from (13.7)', async (t) => {
  const r = await runCli(['up', '--workers', '-1']);
  t.equal(r.code, 1);
  const line = errorLine(r);
  t.match(line, /cluster\.workers must be an integer 0\.\.\d+ \(got "-1" from flag --workers\)/);
  t.match(line, /see hearth up --help/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'exactly one line');

  const m = await runCli(['worker', '--join']);
  t.equal(m.code, 2);
  t.match(errorLine(m), /--join needs a value/);
});

t.test('a busy port: exit 1, one line, nothing left behind (13.2)', { skip: natsMissing() }, async (t) => {
  const port = await holdPort(t);
  const home = tempHome(t);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'hearth-tmp-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const model = await tinyCheckpoint();
  const r = await runCli(['up', '--model', model, '--port', String(port), '--workers', '1'], { HEARTH_HOME: home, TMPDIR: tmp }, 90_000);
  t.notOk(r.timedOut, 'hearth up exited by itself');
  t.equal(r.code, 1, 'exit code 1');
  t.equal(errorLine(r), `hearth up: port ${port} is busy on 127.0.0.1 (another program listens there); use --port N (or HEARTH_PORT; 0 picks a free one)`);
  t.same(processesUnder(home), [], 'no nats-server or worker left running');
  t.same(readdirSync(path.join(home, 'run')), [], 'the nats-server folder (0600 config with the token) is gone');
  t.same(readdirSync(tmp).filter((f) => f.startsWith('hearth-nats-')), [], 'nothing in TMPDIR');
});

t.test('a busy --nats-port: the same, naming the NATS port (13.2)', { skip: natsMissing() }, async (t) => {
  const port = await holdPort(t);
  const home = tempHome(t);
  const model = await tinyCheckpoint();
  const r = await runCli(['up', '--model', model, '--port', '0', '--nats-port', String(port), '--workers', '1'], { HEARTH_HOME: home }, 90_000);
  t.notOk(r.timedOut, 'hearth up exited by itself');
  t.equal(r.code, 1);
  t.match(errorLine(r), new RegExp(`port ${port} is busy \\(NATS\\); use --nats-port`));
  t.same(processesUnder(home), [], 'nothing left running');
});

t.test('--nats-host 0.0.0.0 without a nats-server is refused, not silently in-process (13.8)', async (t) => {
  const home = tempHome(t);
  const model = await tinyCheckpoint();
  const r = await runCli(['up', '--model', model, '--port', '0', '--nats-host', '0.0.0.0', '--workers', '1'], { HEARTH_HOME: home, HEARTH_NATS_SERVER: '/nonexistent/nats-server' }, 60_000);
  t.notOk(r.timedOut, 'it did not start serving');
  t.equal(r.code, 1);
  const line = errorLine(r);
  t.match(line, /--nats-host 0\.0\.0\.0 is there to let other devices join, but there is no nats-server/);
  t.match(line, /HEARTH_NATS_SERVER=\/nonexistent\/nats-server is not an executable file/);
  t.match(line, /apt-get install nats-server/);
  t.notMatch(r.stdout, /hearth is up/);
});

t.test('--model PATH that does not exist: say so, suggest no pull (13.8)', async (t) => {
  const r = await runCli(['up', '--model', '/does/not/exist', '--port', '0']);
  t.equal(r.code, 1);
  const line = errorLine(r);
  t.equal(line, 'hearth up: no checkpoint at /does/not/exist (no such folder): expected a folder with config.json and *.safetensors');
  t.notMatch(r.stderr, /hearth pull/, 'no pull suggested for a path');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-empty-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const e = await runCli(['up', '--model', dir, '--port', '0']);
  t.match(errorLine(e), /that folder has no config\.json/);
});

t.test('--provider cuda without the CUDA build: refused at start with the reason and the fix (13.4)', async (t) => {
  const model = await tinyCheckpoint();
  const r = await runCli(['up', '--model', model, '--port', '0', '--provider', 'cuda'], { HEARTH_HOME: tempHome(t) });
  t.equal(r.code, 1);
  const line = errorLine(r);
  t.match(line, /execution provider cuda is not available/);
  t.match(line, /ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/);
  const bad = await runCli(['worker', '--join', 'nats://127.0.0.1:1', '--provider', 'rocm']);
  t.equal(bad.code, 1);
  t.match(errorLine(bad), /worker\.provider must be one of cpu \| cuda \(got "rocm" from flag --provider\)/);
});

t.test('the launcher at the repo root runs this checkout (never the npm package of that name)', async (t) => {
  t.ok(existsSync(path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'hearth')), './hearth exists');
});
