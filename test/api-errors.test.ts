import t, { type Test } from 'tap';
import { ERRORS, HearthError } from '../src/errors/index.ts';
import { toHttpError } from '../src/api/http-errors.ts';
import { validatorFor } from '../src/api/openapi.ts';
import { pointerToParam } from '../src/api/validation-errors.ts';

// The one error mapper, socket-free: HearthErrors, fastify's own errors, schema failures from the
// OpenAPI document's validators, and unknown throws all leave as OpenAI's shape with the right status.

function shapeOk(t: Test, body: unknown): void {
  const e = (body as { error?: Record<string, unknown> }).error;
  t.ok(e !== undefined, 'has error');
  t.type(e!['message'], 'string');
  t.type(e!['type'], 'string');
  t.ok(e!['param'] === null || typeof e!['param'] === 'string', 'param string|null');
  t.ok(e!['code'] === null || typeof e!['code'] === 'string', 'code string|null');
  t.same(Object.keys(e!).sort(), ['code', 'message', 'param', 'type']);
}

function validate(body: unknown): HearthError {
  const v = validatorFor('CreateChatCompletionRequest');
  if (v(body)) throw new Error(`expected ${JSON.stringify(body)} to fail`);
  const h = toHttpError(Object.assign(new Error('validation'), { validation: v.errors, validationContext: 'body' }), { body });
  return new HearthError('HEARTH_ERR_INVALID_REQUEST', [h.body.error.message], h.body.error.param === null ? {} : { param: h.body.error.param });
}

const base = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

t.test('every catalogue code maps to its own status and type', async (t) => {
  for (const code of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
    const h = toHttpError(new HearthError(code, ['a', 'b', 'c'], { param: 'x' }));
    t.equal(h.status, ERRORS[code].status, code);
    t.equal(h.body.error.type, ERRORS[code].type);
    t.equal(h.body.error.code, ERRORS[code].openaiCode);
    t.equal(h.body.error.param, 'x');
    shapeOk(t, h.body);
  }
});

t.test('429 carries Retry-After; 503 too', async (t) => {
  const h = toHttpError(new HearthError('HEARTH_ERR_QUEUE_FULL', [70, 3]));
  t.equal(h.status, 429);
  t.equal(h.headers['retry-after'], '3');
  t.equal(h.body.error.code, 'rate_limit_exceeded');
  const u = toHttpError(new HearthError('HEARTH_ERR_NO_PLAN', ['no workers']));
  t.equal(u.status, 503);
  t.ok(Number(u.headers['retry-after']) > 0);
  t.equal(u.internal, false, 'no plan is an operational state, not a server bug');
});

t.test('fastify errors', async (t) => {
  const tooLarge = toHttpError(Object.assign(new Error('Request body is too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }), { bodyLimit: 1234 });
  t.equal(tooLarge.status, 413);
  t.match(tooLarge.body.error.message, /1234/);
  const badJson = toHttpError(Object.assign(new SyntaxError('Unexpected token } in JSON at position 3'), { statusCode: 400 }));
  t.equal(badJson.status, 400);
  t.match(badJson.body.error.message, /could not parse the JSON/);
  const proto = toHttpError(Object.assign(new SyntaxError('Object contains forbidden prototype property'), { statusCode: 400 }));
  t.equal(proto.status, 400);
  const media = toHttpError(Object.assign(new Error('Unsupported Media Type: text/plain'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }));
  t.equal(media.status, 415);
  t.match(media.body.error.message, /text\/plain/);
  const empty = toHttpError(Object.assign(new Error("Body cannot be empty when content-type is set to 'application/json'"), { code: 'FST_ERR_CTP_EMPTY_JSON_BODY', statusCode: 400 }));
  t.equal(empty.status, 400);
  const other4xx = toHttpError(Object.assign(new Error('weird'), { statusCode: 418 }));
  t.equal(other4xx.status, 400);
  t.equal(other4xx.body.error.type, 'invalid_request_error');
  for (const h of [tooLarge, badJson, proto, media, empty, other4xx]) shapeOk(t, h.body);
});

t.test('unknown throws are a 500 server_error that does not leak a stack', async (t) => {
  const h = toHttpError(new TypeError('x is undefined'));
  t.equal(h.status, 500);
  t.equal(h.body.error.type, 'server_error');
  t.equal(h.internal, true);
  t.notMatch(h.body.error.message, /at .*\.ts:\d+/);
  const weird = toHttpError('a string');
  t.equal(weird.status, 500);
  shapeOk(t, weird.body);
});

t.test('schema failures name the field as OpenAI does', async (t) => {
  t.equal(pointerToParam('/messages/0/content'), 'messages[0].content');
  t.equal(pointerToParam('/tools/2/function/parameters'), 'tools[2].function.parameters');
  t.equal(pointerToParam('/a~1b/c~0d'), 'a/b.c~d');

  let e = validate({ messages: base.messages });
  t.equal(e.param, 'model');
  t.match(e.message, /Missing required parameter: 'model'/);

  e = validate({ ...base, temperature: 'hot' });
  t.equal(e.param, 'temperature');
  t.match(e.message, /Invalid type for 'temperature'.*number.*got a string/);

  e = validate({ ...base, temperature: 5 });
  t.equal(e.param, 'temperature');
  t.match(e.message, /<= 2.*got 5/);

  e = validate({ ...base, messages: [{ role: 'wizard', content: 'x' }] });
  t.equal(e.param, 'messages[0].role');
  t.match(e.message, /Supported values are: 'system'/);

  e = validate({ ...base, messages: [{ role: 'user', content: 42 }] });
  t.equal(e.param, 'messages[0].content');
  t.match(e.message, /got an integer/);

  e = validate({ ...base, messages: [] });
  t.equal(e.param, 'messages');

  e = validate({ ...base, n: 1.5 });
  t.equal(e.param, 'n');

  e = validate({ ...base, seed: 1e20 });
  t.equal(e.param, 'seed');

  e = validate({ ...base, stop: ['a', 'b', 'c', 'd', 'e'] });
  t.equal(e.param, 'stop');

  e = validate({ ...base, tools: [{ type: 'function', function: { name: 'bad name!' } }] });
  t.equal(e.param, 'tools[0].function.name');

  e = validate({ ...base, tool_choice: 'sometimes' });
  t.equal(e.param, 'tool_choice');

  e = validate({ ...base, response_format: { type: 'json_schema' } });
  t.match(e.param ?? '', /response_format/);
});

t.test('valid bodies pass, unknown fields included', async (t) => {
  const v = validatorFor('CreateChatCompletionRequest');
  t.ok(v({ ...base, some_future_field: { x: 1 }, store: true, metadata: { a: 'b' }, reasoning_effort: 'low' }), String(JSON.stringify(v.errors)));
  t.ok(v({ ...base, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }] }], stop: null, seed: -5, logit_bias: { '42': -100 } }));
  t.ok(v({ ...base, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' }, strict: true } }], tool_choice: { type: 'function', function: { name: 'f' } } }));
  t.ok(v({ ...base, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' }, strict: true } } }));
  const c = validatorFor('CreateCompletionRequest');
  t.ok(c({ model: 'm', prompt: 'hi' }));
  t.ok(c({ model: 'm', prompt: [1, 2, 3] }));
  t.ok(c({ model: 'm', prompt: [[1, 2], [3]] }));
  t.notOk(c({ model: 'm', prompt: [[1, 'a']] }));
  t.notOk(c({ model: 'm', prompt: [-1] }));
});
