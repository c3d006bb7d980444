// Issue 22 item 4: the status page as a newcomer with two devices sees it, in a real browser
// (Debian's chromium via playwright-core) against a real `hearth up` (its own worker) and a second
// worker that joins with the page's own join line under another name. Always on the page: the API
// base URL, a curl to copy, the join line; the row of this machine is marked; the idle device says
// what would make the cluster use it. HEARTH_UI_SCREENSHOT=FILE saves the page (docs/). Skips when
// /usr/bin/chromium is absent.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot } from './helpers/hearth.ts';
import { killGroup } from './helpers/cli.ts';
import { spawnWorker, until } from './helpers/nats.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent`;

t.test('two devices: base URL, curl and join line shown; this machine marked; the idle one says what would use it', { skip }, async (t) => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'hearth-ui2-'));
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/hearth.js'), 'up'], {
    cwd: repoRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: home, HEARTH_HOME: home, HEARTH_PORT: '0', HEARTH_WORKERS: '1', HEARTH_WORKER_THREADS: '1', HEARTH_LOG_LEVEL: 'warn', HEARTH_LOG_PRETTY: 'false' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(home, { recursive: true, force: true });
  });
  await until(() => /OpenAI API at (http:\/\/\S+?)\/v1\b/.test(out) && /HEARTH_TOKEN=\S+ \S+ worker --join (nats:\/\/\S+)/.test(out) || child.exitCode !== null, 180_000, 'hearth up to print its URL and join line');
  const url = /OpenAI API at (http:\/\/\S+?)\/v1\b/.exec(out)?.[1] ?? '';
  const [, token, nats] = /HEARTH_TOKEN=(\S+) \S+ worker --join (nats:\/\/\S+)/.exec(out) ?? [];
  t.ok(url !== '' && token !== undefined && nats !== undefined, 'URL and join line printed');
  const cluster = async (): Promise<{ nodes: { name: string; state: string; here: boolean; useWhen: string | null; range: unknown }[]; model: { id: string } }> => (await fetch(`${url}/v1/cluster`)).json() as never;
  // The second device: the join line, another name (a laptop on the LAN, run here).
  spawnWorker(t, ['--join', nats!, '--cluster', 'default', '--name', 'laptop', '--threads', '1', '--speed', '10', '--memory', '1G'], { HEARTH_TOKEN: token!.replace(/^'|'$/g, '') });
  const settled = async (): Promise<boolean> => { const c = await cluster(); return c.nodes.length === 2 && c.nodes.every((n) => n.state === 'ready' || n.state === 'idle'); };
  for (let end = Date.now() + 120_000; !(await settled()); ) {
    if (Date.now() > end) throw new Error(`two devices did not settle: ${JSON.stringify(await cluster())}\n${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const body = await cluster();
  const idle = body.nodes.find((n) => n.range === null);
  t.ok(idle !== undefined, 'a small model stays on one device: the other is idle');
  t.equal(body.nodes.find((n) => n.name === 'laptop')?.here, false, 'the laptop is not this machine');
  t.ok(body.nodes.some((n) => n.here), 'hearth up\'s own worker is');

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.locator('.node').nth(1).waitFor({ timeout: 15_000 });
  t.equal(await page.locator('#base-url').textContent(), `${url}/v1`, 'the API base URL');
  const curl = (await page.locator('#curl-cmd').textContent()) ?? '';
  t.match(curl, `curl ${url}/v1/chat/completions`);
  t.match(curl, `"model":"${body.model.id}"`, 'the curl names the model served');
  t.equal(await page.locator('#join-line').isVisible(), true, 'the join line is shown with devices present');
  t.match((await page.locator('#join-line-cmd').textContent()) ?? '', /worker --join nats:\/\//);
  const here = page.locator('.node:has(.here:not([hidden]))');
  t.equal(await here.count(), 1, 'one row is marked "this machine"');
  t.notMatch((await here.locator('.node-name').textContent()) ?? '', /^laptop$/);
  const idleRow = page.locator(`.node:has(.node-name:text-is("${idle?.name ?? ''}"))`);
  t.match((await idleRow.locator('.use-when').textContent()) ?? '', /^What would make the cluster use it: /, 'the idle device says what would use it');
  t.same(errors, [], 'no script errors');
  const shot = process.env['HEARTH_UI_SCREENSHOT'];
  if (shot !== undefined && shot !== '') await page.screenshot({ path: shot, fullPage: true });
});
