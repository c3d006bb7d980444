// The error catalogue is the one place errors are defined: codes are unique (also as message
// templates), well-formed, mapped to statuses the openai SDK understands, and each is documented
// in the README's error table.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ERRORS, HearthError } from '../src/errors/index.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const documented = new Set([...readme.matchAll(/\| `(HEARTH_ERR_[A-Z0-9_]+)` \|/g)].map((m) => m[1] ?? ""));

t.test('every code is well-formed, documented and maps to an OpenAI type', async (t) => {
  const codes = Object.keys(ERRORS);
  t.equal(new Set(codes).size, codes.length, 'codes are unique');
  for (const [code, def] of Object.entries(ERRORS)) {
    t.match(code, /^HEARTH_ERR_[A-Z0-9_]+$/, `${code} is named HEARTH_ERR_*`);
    t.ok(def.status >= 400 && def.status < 600, `${code} has an HTTP error status`);
    t.ok(def.message.length > 0, `${code} has a message`);
    t.ok(documented.has(code), `${code} is in the README error table`);
    if (def.status === 401) t.equal(def.type, 'authentication_error', `${code}: 401 is an authentication_error`);
    if (def.status === 429) t.equal(def.type, 'rate_limit_error', `${code}: 429 is a rate_limit_error`);
  }
  for (const code of documented) t.ok(code in ERRORS, `README documents ${code}, which exists`);
});

t.test('HearthError fills the template and carries status, type and param', async (t) => {
  const e = new HearthError('HEARTH_ERR_TENSOR_SHAPE', ['model.safetensors', 'w', '[1]', '[2]'], { param: 'x' });
  t.equal(e.message, 'model.safetensors: tensor w has shape [1], expected [2]');
  t.equal(e.status, 400);
  t.equal(e.type, 'invalid_request_error');
  t.equal(e.param, 'x');
  t.equal(e.code, 'HEARTH_ERR_TENSOR_SHAPE');
  t.notMatch(new HearthError('HEARTH_ERR_CONTEXT_LENGTH', [10, 20, '']).message, /\{\d\}/, 'no placeholder left unfilled');
});
