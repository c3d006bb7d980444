// The status page in a real browser against a real `hearth up` (nats-server, gateway, workers,
// demo checkpoint): Debian's chromium driven by playwright-core. Loads /, gives
// the API key the page asks for, checks every device of GET /v1/cluster is drawn with its layer
// range at the right place along the model, sends a chat message and checks the streamed reply
// equals the same request made without the page. Skips when /usr/bin/chromium is absent.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const API_KEY = 'ui-test-key-0123456789';

interface ClusterBody {
  epoch: number;
  live: boolean;
  model: { id: string; numLayers: number; notice?: string };
  nodes: {
    id: string; name: string; state: string; range: [number, number] | null; provider: string;
    memory: { offered: number; weights: number; kvBytes: number; free: number };
  }[];
}

/** The page's own byte format (src/api/ui/app.js fmtBytes). */
function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

async function run(): Promise<void> {
  const target: Target = await startHearthUp(t, { apiKey: API_KEY });
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const page: Page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // CSP violations and script errors show as console errors; the expected 401 before the key is
  // given shows as a failed resource load, which is not an app error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) pageErrors.push(m.text());
  });

  await t.test('page loads, asks for the key, then draws the cluster', async (t) => {
    const res = await page.goto(target.url);
    t.equal(res?.status(), 200);
    t.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    await page.locator('#key-form').waitFor({ state: 'visible', timeout: 10_000 });
    t.pass('key form shown after /v1/cluster answered 401');
    await page.fill('#api-key', API_KEY);
    await page.click('#key-form button[type=submit]');
    t.equal(await page.evaluate("localStorage.getItem('hearth.apiKey')"), API_KEY, 'key kept in localStorage');

    // Wait until every stage's weights are reported (heartbeats after loading), so the figures hold still.
    let body = await target.cluster();
    for (let i = 0; i < 50 && !body.nodes.every((n) => n.range === null || n.memory.weights > 0); i++) {
      await new Promise((r) => setTimeout(r, 200));
      body = await target.cluster();
    }
    t.ok(body.nodes.length >= 1, 'the cluster has nodes');
    await new Promise((r) => setTimeout(r, 1500)); // one page poll after that
    // Locators, not waitForFunction: its string predicate is eval'd in the page, which the page's
    // CSP (no unsafe-eval) rightly refuses.
    await page.locator('#nodes .node').nth(body.nodes.length - 1).waitFor({ timeout: 15_000 });
    t.equal(await page.locator('#nodes .node').count(), body.nodes.length, 'one row per node');
    await page.locator('#conn[data-state="ok"]').waitFor({ timeout: 10_000 });
    t.equal(await page.textContent('#conn'), 'serving', 'badge says the cluster serves');
    t.equal(await page.textContent('#model-id'), body.model.id);
    t.equal(await page.textContent('#model-layers'), String(body.model.numLayers));
    t.ok(await page.locator('#plan-state').isHidden(), 'no "no plan" banner while the cluster is ready');

    for (const node of body.nodes) {
      const row = page.locator(`#nodes .node[data-node-id="${node.id}"]`);
      t.equal(await row.count(), 1, `row for ${node.id}`);
      t.equal(await row.locator('.node-name').textContent(), node.name);
      t.equal(await row.locator('.badge').textContent(), node.state);
      // True memory figures (issue 13.5): within what the node offered, weights + KV + free add up,
      // and the page shows exactly the gateway's numbers (idle: KV 0, so they hold still).
      const m = node.memory;
      t.ok(m.offered > 0 && m.free <= m.offered, `${node.id}: free ${m.free} <= offered ${m.offered}`);
      t.equal(m.weights + m.kvBytes + m.free, m.offered, `${node.id}: weights + KV + free = offered`);
      if (node.range !== null) t.ok(m.weights > 0, `${node.id}: holds ${m.weights} bytes of weights`);
      t.equal(node.provider, 'cpu', 'provider reported per node');
      t.equal(await row.locator('.mem-text').textContent(), `${fmtBytes(m.weights)} weights + ${fmtBytes(m.kvBytes)} KV · ${fmtBytes(m.free)} free of ${fmtBytes(m.offered)} offered`, `${node.id}: memory as the gateway reports it`);
      t.match(await row.locator('.node-facts').textContent(), /^cpu · /, 'provider on the row');
      if (node.range === null) continue;
      const [a, b] = node.range;
      t.equal(await row.locator('.range-text').textContent(), `layers ${a}–${b - 1} (${b - a})`);
      // The bar sits at [a, b) of the track, measured in the rendered layout.
      const track = await row.locator('.layer-track').boundingBox();
      const bar = await row.locator('.layer-range').boundingBox();
      t.ok(track !== null && bar !== null, 'track and bar are laid out');
      if (track === null || bar === null) continue;
      const inner = track.width - 2; // 1px border each side
      t.ok(Math.abs((bar.x - track.x - 1) / inner - a / body.model.numLayers) < 0.02, `${node.id}: bar starts at layer ${a}`);
      t.ok(Math.abs(bar.width / inner - (b - a) / body.model.numLayers) < 0.02, `${node.id}: bar spans ${b - a} layers`);
    }
  });

  await t.test('the demo model says its text is random, on the page and in /v1/models', async (t) => {
    const notice = page.locator('#model-notice');
    await notice.waitFor({ state: 'visible', timeout: 10_000 });
    const text = (await notice.textContent()) ?? '';
    t.match(text, /random/i, 'the page warns that the demo text is random');
    t.match(text, /--model/, 'and says how to serve a real model');
    const models = (await (await fetch(`${target.url}/v1/models`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as { data: { id: string; description?: string }[] };
    t.equal(models.data[0]?.description, text, '/v1/models carries the same notice');
  });

  await t.test('chat streams a reply equal to the same request made directly', async (t) => {
    const prompt = 'Once upon a time';
    await page.fill('#max-tokens', '24');
    await page.fill('#temperature', '0');
    // Count DOM updates of the reply: more than one means it arrived as a stream, not all at once.
    // (Browser-side code is passed as strings: this file is type-checked without the DOM lib.)
    await page.evaluate(`
      window.__updates = 0;
      new MutationObserver((records) => {
        for (const r of records) if (r.target.classList?.contains('content') && r.target.closest('.assistant') && r.target.textContent !== '') window.__updates++;
      }).observe(document.getElementById('chat-log'), { subtree: true, childList: true, characterData: true });
    `);
    await page.fill('#chat-input', prompt);
    await page.press('#chat-input', 'Enter');
    await page.locator('#chat-log .msg.user').first().waitFor();
    t.equal(await page.locator('#chat-log .msg.user .content').first().textContent(), prompt);
    await page.locator('#chat-log .msg.assistant.done').waitFor({ timeout: 60_000 });
    const shown = (await page.locator('#chat-log .msg.assistant .content').textContent()) ?? '';
    t.notOk(await page.locator('#chat-log .msg.assistant.failed').count(), 'no error shown');
    t.ok(shown.length > 0, 'a reply appeared');
    const updates = Number(await page.evaluate('window.__updates'));
    t.ok(updates > 1, `reply was drawn incrementally (${updates} updates)`);
    t.match(await page.textContent('#chat-status'), /^done: \d+ tokens/);

    // The same request, made by the test without the page, non-streaming and greedy.
    const direct = await fetch(`${target.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ model: (await target.cluster()).model.id, messages: [{ role: 'user', content: prompt }], max_tokens: 24, temperature: 0 }),
    });
    t.equal(direct.status, 200);
    const expected = ((await direct.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content;
    t.equal(shown, expected, 'streamed text in the page = the direct completion');
    // HEARTH_UI_SCREENSHOT=/tmp/x.png keeps a picture of the page for a human to look at.
    if (process.env.HEARTH_UI_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.HEARTH_UI_SCREENSHOT, fullPage: true });
  });

  await t.test('odd node fields (issue 19) leave the badge and the other rows drawn', async (t) => {
    // What a gateway of another version (or a bug) might relay: the page must not trust types.
    const real = await target.cluster();
    const hostile = {
      ...real,
      nodes: [
        { id: 'odd-1', name: { toString: null }, state: { toString: null }, threads: { toString: null }, range: [{ valueOf: null }, 2], memory: { offered: { toString: null }, weights: 'x' }, tokS: 'fast' },
        { id: { toString: null }, name: '\u001b[31mred\u001b[0m', state: 'ready', range: null, memory: null },
        ...real.nodes,
      ],
    };
    await page.route('**/v1/cluster', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(hostile) }));
    t.teardown(() => page.unroute('**/v1/cluster'));
    await page.locator('li.node[data-node-id="odd-1"]').waitFor({ timeout: 10_000 });
    await page.locator('#conn[data-state="ok"]').waitFor({ timeout: 10_000 });
    t.equal(await page.textContent('#conn'), 'serving', 'the badge still says the cluster serves');
    t.equal(await page.textContent('li.node[data-node-id="odd-1"] .node-name'), 'odd-1', 'a name that is not text shows as the id');
    for (const n of real.nodes) t.equal(await page.textContent(`li.node[data-node-id="${n.id}"] .node-name`), n.name, `${n.name} is still drawn`);
  });

  await t.test('no script errors or CSP violations', async (t) => {
    t.same(pageErrors, []);
  });
}

interface Target {
  url: string;
  cluster(): Promise<ClusterBody>;
}

type Tap = { teardown(fn: () => unknown): void; comment(...m: unknown[]): void };
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The real thing: `node bin/hearth.js up` (private nats-server, gateway, 2 local worker
 * processes, the offline demo checkpoint generated into a temp HEARTH_HOME), with an API key.
 */
async function startHearthUp(t: Tap, opts: { apiKey: string }): Promise<Target> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'hearth-ui-'));
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/hearth.js'), 'up'], {
    cwd: repoRoot,
    // Own process group: teardown can stop the workers hearth started even if it hangs.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      HOME: home,
      HEARTH_HOME: home,
      HEARTH_PORT: '0',
      HEARTH_WORKERS: '2',
      HEARTH_WORKER_THREADS: '1',
      HEARTH_API_KEYS: opts.apiKey,
      HEARTH_LOG_LEVEL: 'warn',
      HEARTH_LOG_PRETTY: 'false',
    },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(home, { recursive: true, force: true });
  });
  const deadline = Date.now() + 180_000;
  let url: string | null = null;
  while (url === null) {
    const m = /OpenAI API at (http:\/\/\S+?)\/v1\b/.exec(out);
    if (m !== null) url = m[1] as string;
    else if (child.exitCode !== null) throw new Error(`hearth up exited (${child.exitCode}):\n${out}`);
    else if (Date.now() > deadline) throw new Error(`hearth up did not print its URL:\n${out}`);
    else await new Promise((r) => setTimeout(r, 200));
  }
  // /ready: a plan can serve (the workers joined and loaded their layers).
  for (;;) {
    const r = await fetch(`${url}/ready`).catch(() => null);
    if (r?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`hearth never became ready:\n${out}`);
    await new Promise((res) => setTimeout(res, 250));
  }
  const auth = { authorization: `Bearer ${opts.apiKey}` };
  return {
    url,
    cluster: async () => (await (await fetch(`${url}/v1/cluster`, { headers: auth })).json()) as ClusterBody,
  };
}

// Last, so every declaration above is initialized before the test body runs.
if (!existsSync(CHROMIUM)) {
  t.plan(0, `${CHROMIUM} is not installed (apt-get install -y chromium): status page browser test skipped`);
} else {
  await run();
}
