// Issue 19, item 8: none of the 500s the probe caused was logged (the gateway runs fastify with
// its request logger off, so `req.log.error` went nowhere). An unexpected error is now logged on
// the gateway's logger (AppOptions.errorLog) with the request id, route and stack, and without the
// request's contents (prompts stay out of logs unless logging.logPrompts).
import t from 'tap';
import OpenAI from 'openai';
import type { FastifyInstance } from 'fastify';
import { createApp, DEFAULT_LIMITS } from '../src/api/index.ts';
import { createScheduler } from '../src/scheduler/index.ts';
import { loadServedModel, tinyCheckpoint } from './helpers/hearth.ts';

const SECRET = 'my-private-prompt-7f3a';

t.test('an unexpected error is a logged 500 without the request contents', async (t) => {
  const dir = await tinyCheckpoint('qwen3');
  const served = await loadServedModel(dir, 1);
  const scheduler = createScheduler(served.pipeline, { contextLength: served.model.contextLength, maxConcurrent: 4, maxQueue: 8 });
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const app = await createApp({
    model: served.model,
    generator: scheduler,
    apiKeys: [],
    limits: DEFAULT_LIMITS,
    logger: false,
    errorLog: { error: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) },
    // A route with a bug: what any unforeseen failure in a handler looks like to the app.
    extraRoutes: async (a: FastifyInstance) => {
      a.post('/v1/buggy', async (req) => {
        const body = req.body as { prompt: string };
        throw new TypeError(`cannot read properties of undefined (reading 'x')`, { cause: new Error(`deep inside, near ${body.prompt.length} chars`) });
      });
    },
  });
  t.teardown(async () => {
    await app.close();
    scheduler.clear();
    await served.close();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  const origin = `http://127.0.0.1:${addr.port}`;

  const r = await fetch(`${origin}/v1/buggy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: SECRET }) });
  t.equal(r.status, 500);
  const id = r.headers.get('x-request-id');
  t.equal(lines.length, 1, 'one error line');
  const line = lines[0];
  t.equal(line?.msg, 'request failed');
  t.equal(line?.obj['reqId'], id, 'carries the request id the client saw');
  t.equal(line?.obj['route'], '/v1/buggy');
  const err = line?.obj['err'] as { type: string; message: string; stack: string; cause?: { message: string } } | undefined;
  t.equal(err?.type, 'TypeError');
  t.match(err?.stack ?? '', /api-hostile-logging\.test\.ts/, 'with the stack');
  t.match(err?.cause?.message ?? '', /deep inside/, 'and the cause');
  t.notMatch(JSON.stringify(lines), SECRET, 'the prompt is not in the log');

  // The same app still serves, and a 4xx is not an error line.
  const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: 'unused', maxRetries: 0 });
  const bad = await client.chat.completions.create({ model: served.model.id, messages: [{ role: 'user', content: SECRET }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#' } } } }).then(() => null, (e: unknown) => e);
  t.ok(bad instanceof OpenAI.BadRequestError, String(bad));
  t.equal(lines.length, 1, 'a 400 logs no error line');
  const ok = await client.chat.completions.create({ model: served.model.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  t.equal(ok.choices[0]?.finish_reason, 'length');
});
