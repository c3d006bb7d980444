// The status page in a real browser: Debian's chromium driven by playwright-core. Loads /, gives
// the API key the page asks for, checks every device of GET /v1/cluster is drawn with its layer
// range at the right place along the model, sends a chat message and checks the streamed reply
// equals the same request made without the page. Skips when /usr/bin/chromium is absent.
import t from 'tap';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import Fastify from 'fastify';
import { uiRoutes } from '../src/api/ui/index.ts';

const CHROMIUM = '/usr/bin/chromium';
const API_KEY = 'ui-test-key-0123456789';

if (!existsSync(CHROMIUM)) {
  t.plan(0, `${CHROMIUM} is not installed (apt-get install -y chromium): status page browser test skipped`);
} else {
  await run();
}

interface ClusterBody {
  epoch: number;
  model: { id: string; numLayers: number };
  nodes: { id: string; name: string; state: string; range: [number, number] | null }[];
}

async function run(): Promise<void> {
  const target: Target = await startTarget(t, { apiKey: API_KEY });
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

    const body = await target.cluster();
    t.ok(body.nodes.length >= 1, 'the cluster has nodes');
    // Locators, not waitForFunction: its string predicate is eval'd in the page, which the page's
    // CSP (no unsafe-eval) rightly refuses.
    await page.locator('#nodes .node').nth(body.nodes.length - 1).waitFor({ timeout: 15_000 });
    t.equal(await page.locator('#nodes .node').count(), body.nodes.length, 'one row per node');
    await page.locator('#conn[data-state="ok"]').waitFor({ timeout: 10_000 });
    t.equal(await page.textContent('#model-id'), body.model.id);
    t.equal(await page.textContent('#model-layers'), String(body.model.numLayers));

    for (const node of body.nodes) {
      const row = page.locator(`#nodes .node[data-node-id="${node.id}"]`);
      t.equal(await row.count(), 1, `row for ${node.id}`);
      t.equal(await row.locator('.node-name').textContent(), node.name);
      t.equal(await row.locator('.badge').textContent(), node.state);
      t.match(await row.locator('.mem-text').textContent(), /used \(KV .*\) · .* free of /, 'memory used/free shown');
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

  await t.test('chat streams a reply equal to the same request made directly', async (t) => {
    const prompt = 'Once upon a time';
    await page.fill('#max-tokens', '24');
    await page.fill('#temperature', '0');
    // Count DOM updates of the reply: more than one means it arrived as a stream, not all at once.
    // (Browser-side code is passed as strings: this file is type-checked without the DOM lib.)
    await page.evaluate(`
      window.__updates = 0;
      new MutationObserver(() => {
        const last = document.querySelector('#chat-log .msg.assistant:last-child .content');
        if (last !== null && last.textContent !== '') window.__updates++;
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

  await t.test('no script errors or CSP violations', async (t) => {
    t.same(pageErrors, []);
  });
}

interface Target {
  url: string;
  cluster(): Promise<ClusterBody>;
}

async function startTarget(t: { teardown(fn: () => unknown): void }, opts: { apiKey: string }): Promise<Target> {
  return startStandIn(t, opts);
}

/**
 * INTERIM stand-in until `hearth up` lands: a fastify app with the real uiRoutes, key auth, a
 * /v1/cluster body of the documented shape and an OpenAI-shaped SSE chat route whose text is a
 * pure function of the prompt, so the page's streamed text can be checked against a direct call.
 */
async function startStandIn(t: { teardown(fn: () => unknown): void }, opts: { apiKey: string }): Promise<Target> {
  const app = Fastify();
  const cluster: ClusterBody & { nodes: (ClusterBody['nodes'][number] & Record<string, unknown>)[] } = {
    epoch: 3,
    model: { id: 'stand-in', numLayers: 12 },
    nodes: [
      { id: 'n-laptop', name: 'laptop', state: 'ready', range: [0, 3], memory: { total: 8 * 2 ** 30, free: 3 * 2 ** 30, kvBytes: 2 ** 28 }, threads: 4, speed: 1.5, tokS: 12.5 },
      { id: 'n-desktop', name: 'desktop <b>x</b>', state: 'ready', range: [3, 10], memory: { total: 32 * 2 ** 30, free: 20 * 2 ** 30, kvBytes: 2 ** 29 }, threads: 8, speed: 3.2, tokS: 12.5 },
      { id: 'n-pi', name: 'pi', state: 'loading', range: [10, 12], memory: { total: 4 * 2 ** 30, free: 2 ** 30, kvBytes: 0 }, threads: 4, speed: 0.4, tokS: 0 },
    ],
  };
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    if (req.headers.authorization !== `Bearer ${opts.apiKey}`) await reply.code(401).send({ error: { message: 'Incorrect or missing API key', type: 'authentication_error', param: null, code: 'invalid_api_key' } });
  });
  uiRoutes(app);
  app.get('/v1/cluster', async () => cluster);
  app.post('/v1/chat/completions', async (req, reply) => {
    const body = req.body as { messages: { content: string }[]; stream?: boolean; max_tokens?: number };
    const last = body.messages.at(-1)?.content ?? '';
    const words = `${last.split('').reverse().join('')} and then the end`.split(' ').slice(0, body.max_tokens ?? 16).map((w, i) => (i === 0 ? w : ` ${w}`));
    const text = words.join('');
    if (body.stream !== true) return { id: 'c1', object: 'chat.completion', created: 0, model: 'stand-in', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: words.length, total_tokens: words.length + 1 } };
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const w of words) {
      reply.raw.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: w }, finish_reason: null }] })}\n\n`);
      await new Promise((r) => setTimeout(r, 20));
    }
    reply.raw.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 1, completion_tokens: words.length, total_tokens: words.length + 1 } })}\n\ndata: [DONE]\n\n`);
    reply.raw.end();
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  return { url, cluster: async () => cluster };
}
