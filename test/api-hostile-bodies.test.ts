// Issue 19, items 2, 7 and 8, end to end: a real gateway (in this process, so its event loop can
// be watched), real worker processes and a real nats-server.
//   2. Bodies that cost seconds of event loop each (a 100k-value enum, anyOf of 3,000 objects, 13
//      nested anyOf, 200 costly patterns, 100k one-character messages on every route that renders a prompt) get a 400
//      naming the limit they pass, and prompts slow to tokenize are tokenized off the loop, while
//      /health keeps answering, no worker is declared lost and a normal stream beside them completes.
//   7. A body dripped one byte at a time is cut off at limits.requestTimeoutMs (408); a body that
//      stops arriving is cut off at limits.bodyIdleMs; a stream longer than both is not.
//   8. A $ref cycle and 5,000-deep tool arguments are 400s, not stack overflows; a 500 is logged.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import OpenAI from 'openai';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';
import { hostileBodies } from './helpers/hostile-bodies.ts';

const skip = natsMissing();
const REQUEST_TIMEOUT_MS = 4000;
const BODY_IDLE_MS = 1500;

/** `{"a":{"a":…{}…}}` as JSON text (JSON.stringify itself recurses, and tap's stack is small). */
const deepJson = (depth: number): string => `${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}`;
/** JSON.stringify(value) with the text `deep` where value holds the string DEEP. */
const withDeep = (value: unknown, deep: string): string => JSON.stringify(value).replace('"DEEP"', deep);


/** Largest gap between ticks of a 10 ms interval: how long this process's event loop stalled. */
function stallMeter(): { stop(): number } {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 10);
    last = now;
  }, 10);
  return { stop: () => { clearInterval(timer); return worst; } };
}

/** Writes raw HTTP and resolves with what came back once the server closed the socket. */
function rawRequest(origin: string, drive: (s: Socket) => void, giveUpMs: number): Promise<{ closed: boolean; reply: string }> {
  const url = new URL(origin);
  return new Promise((resolve) => {
    const s = connect(Number(url.port), url.hostname);
    let reply = '';
    const giveUp = setTimeout(() => { s.destroy(); resolve({ closed: false, reply }); }, giveUpMs);
    s.on('data', (b) => { reply += b.toString(); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(giveUp); resolve({ closed: true, reply }); });
    s.on('connect', () => drive(s));
  });
}

t.test('hostile bodies on a live cluster', { skip }, async (t) => {
  const dir = await tinyCheckpoint('qwen3');
  const c = await startCluster(t, dir, { workers: 2, limits: { requestTimeoutMs: REQUEST_TIMEOUT_MS, bodyIdleMs: BODY_IDLE_MS, maxQueue: 64 } });
  const client = new OpenAI({ baseURL: c.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
  const model = 'tiny-qwen3';
  const post = (path: string, body: string): Promise<Response> => fetch(`${c.origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  await t.test('2: each hostile body is a 400 naming its limit; /health answers and no worker is lost', async (t) => {
    const bodies = hostileBodies(model);
    const epoch = c.gateway.pipeline.coordinator.plan()?.epoch;
    // A normal stream runs beside the hostile bodies and must end as usual.
    const normal = (async () => {
      const s = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 64, temperature: 0, stream: true });
      let finish: string | null = null;
      for await (const ch of s) finish = ch.choices[0]?.finish_reason ?? finish;
      return finish;
    })();
    let polling = true;
    let worstHealthMs = 0;
    const poller = (async () => {
      while (polling) {
        const t0 = performance.now();
        const r = await fetch(`${c.origin}/health`);
        await r.arrayBuffer();
        worstHealthMs = Math.max(worstHealthMs, performance.now() - t0);
        t.equal(r.status, 200);
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    const meter = stallMeter();
    for (const h of bodies) {
      const one = stallMeter();
      const r = await post(h.path, h.body);
      const text = await r.text();
      t.comment(`${h.name}: stall ${one.stop().toFixed(0)} ms`);
      t.equal(r.status, 400, `${h.name}: ${r.status} ${text.slice(0, 200)}`);
      t.match(text, h.says, `${h.name}: the message names the limit`);
    }
    // Prompts that are slow to tokenize (BPE is superlinear in one run of spaces: ~3 s for these
    // on the event loop before) are tokenized off it. They pass the length precheck (under 4096
    // tokens x 128 characters) and come out at ~6,700 tokens: refused for the context, no stall.
    const slowText = `${' '.repeat(480_000)}${' a'.repeat(3000)}`;
    const slow: [string, string, string][] = [
      ['chat: 480k spaces', '/v1/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: slowText }], max_tokens: 1 })],
      ['completions: 480k spaces', '/v1/completions', JSON.stringify({ model, prompt: slowText, max_tokens: 1 })],
    ];
    for (const [name, path, body] of slow) {
      const one = stallMeter();
      const r = await post(path, body);
      const text = await r.text();
      t.comment(`${name}: stall ${one.stop().toFixed(0)} ms`);
      t.equal(r.status, 400, `${name}: ${r.status} ${text.slice(0, 200)}`);
      t.match(text, /maximum context length is 4096 tokens/, `${name}: refused for the context once tokenized`);
    }
    const worstStallMs = meter.stop();
    polling = false;
    await poller;
    t.equal(await normal, 'length', 'the normal stream beside them completed');
    // The unfixed gateway stalled 7-30 s on each of these bodies (the first alone lost both
    // workers at lostAfterMs 3 s). What is left is reading a 1-3 MB JSON body at all (parse and
    // request-schema validation, ~50 ms each on an idle core; 60-460 ms measured here with two
    // workers decoding on the same 2 cores). 1.5 s keeps a busy box from failing the test while
    // any return of the stall, or a lost heartbeat window, fails it.
    t.comment(`worst /health ${worstHealthMs.toFixed(0)} ms, worst event-loop stall ${worstStallMs.toFixed(0)} ms`);
    t.ok(worstHealthMs < 1500, `/health answered within 1.5 s throughout (worst ${worstHealthMs.toFixed(0)} ms)`);
    t.ok(worstStallMs < 1500, `the gateway's event loop never stalled 1.5 s (worst ${worstStallMs.toFixed(0)} ms)`);
    t.equal(c.gateway.pipeline.coordinator.plan()?.epoch, epoch, 'no re-plan: no worker was declared lost');
    t.same(c.gateway.pipeline.clusterSnapshot().nodes.filter((n) => n.state === 'lost').map((n) => n.state), [], 'no node is lost');
    t.equal(await c.metric('hearth_errors_total', 'code="HEARTH_ERR_INTERNAL"'), 0, 'no 500');
  });

  await t.test('8: $ref cycles and deep nesting are 400s, not stack overflows', async (t) => {
    const chat = (extra: object): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ...extra });
    const schema = (s: unknown): string => chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: s } } });
    const deep = deepJson(5000);
    const cases: [string, string, string, RegExp][] = [
      ['$ref to itself', '/v1/chat/completions', schema({ $ref: '#' }), /refers back to itself/],
      ['two $defs naming each other', '/v1/chat/completions', schema({ $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }), /refers back to itself/],
      ['anyOf whose branch is the schema', '/v1/chat/completions', chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { anyOf: [{ $ref: '#' }, { type: 'object' }] } } }], tool_choice: 'required' }), /refers back to itself/],
      ['5,000-deep response_format schema', '/v1/chat/completions', withDeep(JSON.parse(schema('DEEP')), deep), /limit depth 64/],
      ['5,000-deep tool_use.input', '/v1/messages', withDeep({ model, max_tokens: 4, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: 'DEEP' }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'x' }] }] }, deep), /limit 64/],
      ['5,000-deep chat tool-call arguments', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: deep } }] }, { role: 'tool', tool_call_id: 'c1', content: 'x' }] }), /limit 64/],
      ['5,000-deep tool_choice (quoted by the 400 itself)', '/v1/chat/completions', withDeep(JSON.parse(chat({ tool_choice: 'DEEP' })), deep), /Invalid value/],
      ['5,000-deep chat_template_kwargs', '/v1/chat/completions', withDeep(JSON.parse(chat({ chat_template_kwargs: 'DEEP' })), deep), /limit 64/],
      ['5,000-deep function_call arguments (responses)', '/v1/responses', JSON.stringify({ model, max_output_tokens: 4, input: [{ type: 'message', role: 'user', content: 'hi' }, { type: 'function_call', call_id: 'c1', name: 'f', arguments: deep }, { type: 'function_call_output', call_id: 'c1', output: 'x' }] }), /limit 64/],
    ];
    for (const [name, path, body, says] of cases) {
      const r = await post(path, body);
      const text = await r.text();
      t.equal(r.status, 400, `${name}: ${r.status} ${text.slice(0, 200)}`);
      t.match(text, says, `${name}: says why`);
    }
    // A recursive schema that writes something each level (a tree) stays accepted.
    const tree = { type: 'object', properties: { name: { type: 'string', maxLength: 3 }, kids: { type: 'array', items: { $ref: '#' }, maxItems: 1 } }, required: ['name'] };
    const ok = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 40, response_format: { type: 'json_schema', json_schema: { name: 'tree', schema: tree } } });
    t.ok(ok.choices[0]?.message.content !== undefined, 'a recursive tree schema is served');
    t.equal(await c.metric('hearth_errors_total', 'code="HEARTH_ERR_INTERNAL"'), 0, 'no 500');
  });

  await t.test('7: a dripped body is cut off at requestTimeoutMs, a silent one at bodyIdleMs', async (t) => {
    const head = (len: number): string => `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${len}\r\n\r\n`;
    // One byte every 500 ms: never idle for bodyIdleMs, so only the whole-request deadline ends it.
    let drip: NodeJS.Timeout | undefined;
    const dripped = await rawRequest(c.origin, (s) => {
      s.write(head(10_000));
      drip = setInterval(() => s.write(' '), 500);
    }, 20_000);
    clearInterval(drip);
    t.ok(dripped.closed, 'the server closed the dripping connection');
    t.match(dripped.reply, /^HTTP\/1\.1 408/, 'with 408 Request Timeout');
    // Half a body, then silence: closed without an answer once bodyIdleMs passes (before the
    // request deadline would answer 408).
    const silent = await rawRequest(c.origin, (s) => s.write(`${head(10_000)}{"model":`), 20_000);
    t.ok(silent.closed, 'the server closed the silent connection');
    t.equal(silent.reply, '', 'closed for idleness (no 408: the request deadline had not come)');
    t.equal((await fetch(`${c.origin}/health`)).status, 200, 'the gateway serves on');
  });

  await t.test('7: a stream that outlasts both timeouts is not cut', async (t) => {
    const s = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: 4000, temperature: 1, stream: true });
    const started = performance.now();
    let chunks = 0;
    let outlasted = false;
    for await (const ch of s) {
      chunks++;
      // Past the request deadline plus node's check interval, with room to spare.
      if (performance.now() - started > REQUEST_TIMEOUT_MS + 3000) {
        outlasted = true;
        break;
      }
      if (ch.choices[0]?.finish_reason) break;
    }
    t.ok(chunks > 1, `the stream delivered ${chunks} chunks`);
    t.ok(outlasted, 'and was still running well past requestTimeoutMs');
  });
});
