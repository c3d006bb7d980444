// The gateway's process guard (src/cli/process-guard.ts): a rejection or exception that escapes every
// handler is logged and counted, and the process keeps running (issue 8, defect 1: Node's default
// is to exit, taking every stream and, under `hearth up`, the local workers with it).
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './helpers/nats.ts';

t.test('an escaped rejection and exception are logged and counted; the process lives on', async (t) => {
  // A child process, so that nothing else (tap's own handlers) is listening: exactly a gateway's situation.
  const script = `
    import { guardProcess } from ${JSON.stringify(path.join(repoRoot, 'src/cli/process-guard.ts'))};
    const lines = [];
    let count = 0;
    const log = { error: (obj, msg) => lines.push(msg + ': ' + String(obj.err?.message ?? obj.err)) };
    guardProcess(log, () => { count++; });
    Promise.reject(new Error('nobody listens to me'));
    setTimeout(() => { throw new Error('thrown from a timer'); }, 10);
    setTimeout(() => { console.log(JSON.stringify({ alive: true, count, lines })); }, 100);
  `;
  const child = spawn(process.execPath, [...process.execArgv.filter((a) => a.startsWith('--import')), '--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(code, 0, `exits normally, not on the first escape (${err.slice(-500)})`);
  const report = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { alive?: boolean; count?: number; lines?: string[] };
  t.equal(report.alive, true, 'still running after both');
  t.equal(report.count, 2, 'both counted');
  t.match(report.lines?.[0], /unhandled promise rejection.*keeps serving: nobody listens to me/);
  t.match(report.lines?.[1], /uncaught exception.*keeps serving: thrown from a timer/);
});
