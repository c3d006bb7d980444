// Logging: JSON lines, prompts/completions redacted unless logging.logPrompts, pretty output when
// asked, request ids (caller's X-Request-Id reused when safe, echoed back, on every log line).
import t from 'tap';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { createLogger, echoRequestId, fastifyLogging } from '../src/observability/index.ts';
import type { LoggingConfig } from '../src/config/index.ts';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

const base: LoggingConfig = { level: 'info', pretty: false, logPrompts: false };
const SECRET = 'my private prompt about my medical history';

t.test('prompts and completions are redacted by default', async (t) => {
  const out = sink();
  const log = createLogger(base, { destination: out.stream });
  log.info({ body: { model: 'm', messages: [{ role: 'user', content: SECRET }], max_tokens: 5 } }, 'request');
  log.info({ req: { body: { prompt: SECRET } } }, 'completion request');
  log.info({ completion: SECRET, tokens: 9 }, 'done');
  log.flush();
  const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 3);
  t.notOk(out.text().includes(SECRET), 'secret text never written');
  const first = lines[0] as { body: { model: string; max_tokens: number; messages: string } };
  t.equal(first.body.model, 'm', 'non-private fields stay');
  t.equal(first.body.max_tokens, 5);
  t.match(first.body.messages, /^\[redacted \d+ chars/);
  t.equal((lines[2] as { tokens: number }).tokens, 9);
});

t.test('logPrompts: true logs them', async (t) => {
  const out = sink();
  const log = createLogger({ ...base, logPrompts: true }, { destination: out.stream });
  log.info({ body: { messages: [{ role: 'user', content: SECRET }] } }, 'request');
  log.flush();
  t.ok(out.text().includes(SECRET));
});

t.test('level filters, pretty prints non-JSON lines', async (t) => {
  const out = sink();
  const log = createLogger({ ...base, level: 'warn' }, { destination: out.stream });
  log.info('hidden');
  log.warn('shown');
  log.flush();
  t.notOk(out.text().includes('hidden'));
  t.ok(out.text().includes('shown'));

  const p = sink();
  const plog = createLogger({ ...base, pretty: 'auto' }, { destination: p.stream, isTTY: true });
  plog.info({ body: { prompt: SECRET } }, 'pretty line');
  await new Promise((r) => setTimeout(r, 50));
  t.match(p.text(), /INFO.*pretty line/);
  t.throws(() => JSON.parse(p.text().trim().split('\n')[0] ?? ''), 'not JSON');
  t.notOk(p.text().includes(SECRET), 'pretty output is redacted too');

  const j = sink();
  createLogger({ ...base, pretty: 'auto' }, { destination: j.stream, isTTY: false }).info('json line');
  t.equal((JSON.parse(j.text()) as { msg: string }).msg, 'json line', 'auto + no TTY = JSON');
});

t.test('request ids: reused when safe, minted otherwise, echoed and logged', async (t) => {
  const out = sink();
  const app = Fastify({ ...fastifyLogging(createLogger(base, { destination: out.stream })) });
  echoRequestId(app);
  app.post('/echo', async (req) => {
    req.log.info({ body: req.body }, 'handling');
    return { ok: true };
  });
  t.teardown(() => app.close());
  const a = await app.inject({ method: 'POST', url: '/echo', headers: { 'x-request-id': 'trace-abc.123' }, payload: { prompt: SECRET } });
  t.equal(a.headers['x-request-id'], 'trace-abc.123');
  const b = await app.inject({ method: 'POST', url: '/echo', headers: { 'x-request-id': 'bad id\u0007<script>' }, payload: {} });
  t.match(String(b.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'unsafe id replaced by a uuid');
  const c = await app.inject({ method: 'POST', url: '/echo', payload: {} });
  t.not(c.headers['x-request-id'], b.headers['x-request-id'], 'ids are unique');
  const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as { reqId?: string; msg?: string });
  const mine = lines.filter((l) => l.reqId === 'trace-abc.123');
  t.ok(mine.some((l) => l.msg === 'handling'), 'handler line carries reqId');
  t.ok(mine.length >= 2, 'fastify request/response lines carry it too');
  t.notOk(out.text().includes(SECRET));
});
