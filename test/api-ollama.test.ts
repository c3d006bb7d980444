// Ollama's API on hearth's port (issue 21 item 6), driven by the real `ollama` npm client against
// `hearth up` (a real nats-server and two worker processes): list, show, ps, version; chat streamed
// and not, with a tool; generate; format as "json" and as a schema (constrained); embed; errors in
// Ollama's {"error": "..."} shape with Ollama's statuses.
import t, { type Test } from 'tap';
import { Ollama } from 'ollama';
import { startHearth } from './helpers/hearth.ts';

const h = await startHearth(t, { workers: 2 });
const ollama = new Ollama({ host: h.origin, headers: { authorization: `Bearer ${h.apiKey}` } });
const name = `${h.modelId}:latest`;

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] },
  },
};

/** Ollama's final object: durations in nanoseconds, counts, a done_reason. */
function checkFinal(t: Test, r: Record<string, unknown>, what: string): void {
  t.equal(r['done'], true, `${what}: done`);
  t.match(r['done_reason'], /^(stop|length)$/, `${what}: done_reason ${String(r['done_reason'])}`);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']) {
    t.ok(Number.isInteger(r[k]) && (r[k] as number) >= 0, `${what}: ${k} = ${String(r[k])}`);
  }
  t.ok((r['prompt_eval_count'] as number) > 0, `${what}: the prompt was counted`);
  t.ok((r['total_duration'] as number) >= (r['eval_duration'] as number), `${what}: total ≥ eval`);
  t.ok((r['total_duration'] as number) > 1e6, `${what}: total_duration is in nanoseconds (> 1 ms)`);
}

t.test('list, ps, show, version', async (t) => {
  const tags = await ollama.list();
  t.same(tags.models.map((m) => m.name), [name], 'the served model as NAME:latest');
  t.match(tags.models[0]!.digest, /^[0-9a-f]{64}$/);
  const ps = await ollama.ps();
  t.equal(ps.models[0]?.name, name, 'ps: loaded');
  const show = await ollama.show({ model: name });
  t.ok(show.capabilities.includes('tools') && show.capabilities.includes('embedding'), `capabilities ${show.capabilities.join(',')}`);
  t.match(show.template, /im_start/, "the model's chat template");
  t.equal((show.model_info as unknown as Record<string, unknown>)['general.architecture'], 'qwen3');
  const v = await ollama.version();
  t.match(v.version, /^\d+\.\d+\.\d+/);
});

t.test('chat, not streamed: a required tool call comes back as an object', async (t) => {
  const req = { model: name, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weather], stream: false as const, options: { seed: 1, num_predict: 64 } };
  // tool_choice is hearth's extension; the client sends the body's fields as they are.
  const r = await ollama.chat({ ...req, tool_choice: 'required' } as typeof req);
  const calls = r.message.tool_calls ?? [];
  t.equal(calls.length >= 1, true, `${calls.length} call(s)`);
  t.equal(calls[0]?.function.name, 'get_weather');
  const args = calls[0]?.function.arguments as Record<string, unknown>;
  t.equal(typeof args, 'object', 'arguments is an object, not a JSON string');
  t.equal(typeof args['city'], 'string', 'constrained to the schema: city is a string');
  t.ok((args['city'] as string).length <= 12, 'within maxLength');
  checkFinal(t, r as unknown as Record<string, unknown>, 'chat');
  // The call and its result go back as Ollama sends them (tool_name, no call id): planned and answered.
  const next = await ollama.chat({
    model: name,
    stream: false,
    options: { num_predict: 4 },
    messages: [{ role: 'user', content: 'Weather in Paris?' }, { role: 'assistant', content: '', tool_calls: calls }, { role: 'tool', content: '{"temp": 21}', tool_name: 'get_weather' }],
    tools: [weather],
  });
  t.equal(next.done, true, 'a follow-up with the tool result is answered');
  t.ok(next.prompt_eval_count > r.prompt_eval_count, 'and its prompt holds the call and the result');
});

t.test('chat, streamed: NDJSON parts, the tool call whole in one part, a final part', async (t) => {
  const req = { model: name, messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools: [weather], stream: true as const, options: { seed: 2, num_predict: 64 } };
  const stream = await ollama.chat({ ...req, tool_choice: 'required' } as typeof req);
  const parts: Record<string, unknown>[] = [];
  for await (const p of stream) parts.push(p as unknown as Record<string, unknown>);
  t.ok(parts.length >= 2, `${parts.length} parts`);
  t.ok(parts.slice(0, -1).every((p) => p['done'] === false), 'every part but the last is done: false');
  const withCalls = parts.filter((p) => ((p['message'] as { tool_calls?: unknown[] }).tool_calls ?? []).length > 0);
  t.ok(withCalls.length >= 1, 'a part carries the tool call');
  const call = (withCalls[0]!['message'] as { tool_calls: { function: { name: string; arguments: Record<string, unknown> } }[] }).tool_calls[0]!;
  t.equal(call.function.name, 'get_weather');
  t.equal(typeof call.function.arguments['city'], 'string', 'arguments complete and an object');
  checkFinal(t, parts.at(-1)!, 'streamed chat');

  const text = await ollama.chat({ model: name, messages: [{ role: 'user', content: 'Hello' }], stream: true, options: { seed: 3, num_predict: 6 } });
  let content = '';
  let last: Record<string, unknown> = {};
  for await (const p of text) {
    content += p.message.content;
    last = p as unknown as Record<string, unknown>;
  }
  t.ok(content.length > 0, 'text content streamed');
  t.ok((last['eval_count'] as number) <= 6, `num_predict bounds the answer: ${String(last['eval_count'])} tokens`);
});

t.test('generate, streamed and not; num_predict stops with length', async (t) => {
  const r = await ollama.generate({ model: name, prompt: 'Once upon a time', system: 'Tell a story.', stream: false, options: { seed: 4, num_predict: 5, temperature: 0.7, top_k: 20, top_p: 0.9 }, keep_alive: '5m', think: false });
  t.equal(typeof r.response, 'string');
  t.equal(r.eval_count, 5);
  t.equal(r.done_reason, 'length');
  checkFinal(t, r as unknown as Record<string, unknown>, 'generate');
  const s = await ollama.generate({ model: name, prompt: 'Once upon a time', stream: true, options: { seed: 4, num_predict: 5 } });
  let text = '';
  let done = false;
  for await (const p of s) {
    text += p.response;
    done = p.done;
  }
  t.ok(done, 'the stream ends with done');
  t.ok(text.length > 0, 'response text streamed');
  const same = await ollama.generate({ model: name, prompt: 'Once upon a time', stream: false, options: { seed: 4, num_predict: 5 } });
  t.equal(same.response, text, 'same seed → same text, streamed or not');
});

t.test('format: a JSON schema and "json" constrain the output', async (t) => {
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, n: { type: 'integer' } }, required: ['name', 'n'], additionalProperties: false };
  const r = await ollama.chat({ model: name, messages: [{ role: 'user', content: 'A name and a number' }], format: schema, stream: false, options: { seed: 5 } });
  const v = JSON.parse(r.message.content) as Record<string, unknown>;
  t.equal(typeof v['name'], 'string');
  t.ok(Number.isInteger(v['n']), 'n is an integer');
  t.same(Object.keys(v).sort(), ['n', 'name'], 'exactly the schema\'s keys');
  const j = await ollama.generate({ model: name, prompt: 'JSON please', format: 'json', stream: false, options: { seed: 6 } });
  const o: unknown = JSON.parse(j.response ?? '');
  t.ok(o !== null && typeof o === 'object' && !Array.isArray(o), 'format json: an object');
});

t.test('embed and the older embeddings route', async (t) => {
  const r = await ollama.embed({ model: name, input: ['the cat sat', 'a dog ran'] });
  t.equal(r.embeddings.length, 2);
  const width = r.embeddings[0]!.length;
  t.ok(width > 0, `width ${width}`);
  for (const e of r.embeddings) {
    const norm = Math.sqrt(e.reduce((s, x) => s + x * x, 0));
    t.ok(Math.abs(norm - 1) < 1e-4, `L2-normalized (${norm})`);
  }
  t.notSame(r.embeddings[0], r.embeddings[1], 'different texts, different embeddings');
  const one = await ollama.embeddings({ model: name, prompt: 'the cat sat' });
  t.same(one.embedding.map((x) => x.toFixed(5)), r.embeddings[0]!.map((x) => x.toFixed(5)), 'the same text embeds the same through both routes');
});

t.test("errors in Ollama's shape", async (t) => {
  const failure = async (p: Promise<unknown>): Promise<{ status_code?: number; error?: string }> => {
    try {
      await p;
    } catch (e) {
      return e as { status_code?: number; error?: string };
    }
    return {};
  };
  const missing = await failure(ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'hi' }], stream: false }));
  t.equal(missing.status_code, 404, 'unknown model: 404');
  t.match(missing.error, /nope/, 'naming the model asked for');
  const ctx = await failure(ollama.generate({ model: name, prompt: 'hi', stream: false, options: { num_ctx: 10_000_000 } }));
  t.equal(ctx.status_code, 400, 'num_ctx over the context served: 400');
  t.match(ctx.error, /num_ctx/, 'naming num_ctx');
  const raw = await fetch(`${h.origin}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${h.apiKey}` }, body: JSON.stringify({ model: name, messages: [{ role: 'wizard', content: 'x' }] }) });
  t.equal(raw.status, 400);
  const body = (await raw.json()) as Record<string, unknown>;
  t.same(Object.keys(body), ['error'], 'the body is {"error": "..."}');
  t.equal(typeof body['error'], 'string');
  const load = await ollama.chat({ model: name, messages: [], stream: false });
  t.equal(load.done_reason, 'load', 'an empty chat "loads" the model as Ollama answers it');
});
