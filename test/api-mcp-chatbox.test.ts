import t from 'tap';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chromium, type Browser } from 'playwright-core';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { everythingStdio, writeMcpConfig } from './helpers/mcp.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 26: the status page's chat box calling the operator's configured stdio MCP server (the
// real server-everything). In headless chromium: give the key, choose the server under "tools",
// tick "call a tool", send; the page draws the call (server.tool(arguments)) and its result, then
// the model's answer. HEARTH_UI_SCREENSHOT_MCP=path saves the page (docs/mcp-chat-box.png).
// Skips without /usr/bin/chromium.

const CHROMIUM = '/usr/bin/chromium';
const KEY = `key-${randomBytes(12).toString('hex')}`;

async function run(): Promise<void> {
  // A short MCP time bound: whatever tool the model picks, the page gets an answer quickly.
  const file = writeMcpConfig({ everything: everythingStdio({}, { allowedKeys: [KEY] }) });
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, flags: { 'mcp.configFile': file, 'mcp.timeoutMs': 30000, 'server.apiKeys': KEY, 'server.ui': true } });
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) pageErrors.push(m.text());
  });

  await t.test('the chat box calls a configured stdio server and shows the call and its result', async (t) => {
    await page.goto(c.origin);
    await page.waitForSelector('#key-form:not([hidden])');
    await page.fill('#api-key', KEY);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#mcp-server option[value="everything"]', { state: 'attached', timeout: 15_000 });
    t.same(await page.$$eval('#mcp-server option', (os) => os.map((o) => (o as unknown as { value: string }).value)), ['', 'everything'], 'the servers this key may use');
    await page.selectOption('#mcp-server', 'everything');
    await page.check('#mcp-force');
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '24');
    await page.fill('#chat-input', 'Add 2 and 3 with the sum tool.');
    await page.click('#send');
    await page.locator('#chat-status', { hasText: /^(done|error)/ }).waitFor({ timeout: 120_000 });
    const status = await page.textContent('#chat-status');
    t.match(status, /^done: 1 tool call/, `status: ${status}`);
    const call = await page.textContent('.msg.tool .content');
    t.match(call, /^everything\.[a-z-]+\(\{.*\}\)/s, `the call is drawn: ${call?.slice(0, 120)}`);
    const result = await page.textContent('.msg.tool .result');
    t.match(result, /^(→ |error: )/, 'and its result (or the tool\'s error)');
    t.not(result, 'running…');
    t.ok((await page.$$('.msg.assistant')).length === 1, "then the model's answer");
    await page.locator('.msg.user').first().scrollIntoViewIfNeeded();
    if (process.env['HEARTH_UI_SCREENSHOT_MCP'] !== undefined) await page.screenshot({ path: process.env['HEARTH_UI_SCREENSHOT_MCP'] });
    t.same(pageErrors, [], 'no script or CSP errors');
  });
}

if (natsMissing() !== false || !existsSync(CHROMIUM)) {
  t.plan(0, `${CHROMIUM} or nats-server missing: chat box MCP test skipped`);
} else {
  await run();
}
