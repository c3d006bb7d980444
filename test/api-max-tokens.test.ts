import t from 'tap';
import OpenAI from 'openai';
import { startCluster } from './helpers/gateway.ts';
import { tinyCheckpoint } from './helpers/hearth.ts';
import { natsMissing } from './helpers/nats.ts';

// Issue 21 item 3: max_tokens as OpenAI and Anthropic have it, on every API. A value over the
// operator's cap (limits.maxTokens) or over the context left after the prompt is a 400 naming the
// limit — it was cut silently (Claude Code asked for 32,000 and got 4,096); absent, the answer may
// run to the context's end (here: to the cap); Responses echoes the limit applied. Through the
// NATS gateway (real nats-server and worker), the openai SDK as the client.

const CAP = 200;

interface ApiErr {
  readonly status?: number;
  readonly code?: string | null;
  readonly param?: string | null;
  readonly message?: string;
}

async function failure(t: { fail(msg: string): unknown }, p: Promise<unknown>, what: string): Promise<ApiErr> {
  try {
    await p;
  } catch (e) {
    return e as ApiErr;
  }
  t.fail(`${what}: expected an error, got an answer`);
  return {};
}

t.test('max_tokens over the cap or the context is a 400 naming the limit, on every API', { skip: natsMissing() }, async (t) => {
  const c = await startCluster(t, await tinyCheckpoint('qwen3'), { workers: 1, limits: { maxTokens: CAP } });
  const models = (await (await fetch(`${c.baseURL}/models`)).json()) as { data: { id: string; max_model_len: number }[] };
  const model = models.data[0]!.id;
  const context = models.data[0]!.max_model_len;
  const client = new OpenAI({ apiKey: 'none', baseURL: c.baseURL, maxRetries: 0 });
  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];

  await t.test('over the operator cap', async (t) => {
    const chat = await failure(t, client.chat.completions.create({ model, messages, max_tokens: CAP + 1 }), 'chat');
    t.equal(chat.status, 400, 'chat: 400');
    t.equal(chat.param, 'max_tokens');
    t.match(chat.message, new RegExp(`${CAP + 1} is more than this server allows \\(${CAP}, .*limits\\.maxTokens`), 'names the limit and the setting');
    const mct = await failure(t, client.chat.completions.create({ model, messages, max_completion_tokens: CAP + 1 }), 'chat mct');
    t.equal(mct.param, 'max_completion_tokens', 'the field the client used');
    const comp = await failure(t, client.completions.create({ model, prompt: 'Once', max_tokens: CAP + 1 }), 'completions');
    t.equal(comp.status, 400, 'completions: 400');
    const resp = await failure(t, client.responses.create({ model, input: 'Hi', max_output_tokens: CAP + 1 }), 'responses');
    t.equal(resp.status, 400, 'responses: 400');
    t.equal(resp.param, 'max_output_tokens', 'named as Responses names it');
    const msg = await fetch(`${c.origin}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model, max_tokens: CAP + 1, messages }) });
    t.equal(msg.status, 400, 'anthropic messages: 400');
    t.match(await msg.text(), /limits\.maxTokens/, 'anthropic messages: names the limit');
  });

  await t.test('over the context left after the prompt', async (t) => {
    // A prompt of known length (token ids), leaving fewer than CAP tokens of room.
    const prompt = Array.from({ length: context - 50 }, (_, i) => 1000 + (i % 500));
    const over = await failure(t, client.completions.create({ model, prompt, max_tokens: 51 }), 'completions');
    t.equal(over.status, 400, 'a 400, not a reply cut at the context');
    t.equal(over.code, 'context_length_exceeded');
    t.match(over.message, new RegExp(`maximum context length is ${context} tokens.*requested ${context + 1} tokens \\(${context - 50} in the messages, 51 in the completion\\)`), 'the numbers');
    const fits = await client.completions.create({ model, prompt, max_tokens: 50, logit_bias: { '151643': -100, '151645': -100 } });
    t.equal(fits.usage?.completion_tokens, 50, 'exactly the room left is honoured');
    // Chat: the same rule after the template.
    const long = [{ role: 'user' as const, content: 'word '.repeat(context) }];
    const probe = await failure(t, client.chat.completions.create({ model, messages: long, max_tokens: 1 }), 'chat probe');
    t.equal(probe.code, 'context_length_exceeded', 'a prompt over the context is still context_length_exceeded');
  });

  await t.test('absent: up to the context, within the cap; Responses echoes the limit applied', async (t) => {
    const noEnd = { '151643': -100, '151645': -100 };
    const r = await client.chat.completions.create({ model, messages, logit_bias: noEnd });
    t.equal(r.usage?.completion_tokens, CAP, 'ran to the operator cap (the context is larger)');
    t.equal(r.choices[0]?.finish_reason, 'length');
    const asked = await client.responses.create({ model, input: 'Hi', max_output_tokens: 5 });
    t.equal(asked.max_output_tokens, 5, 'echoed: the value asked for');
    const none = await client.responses.create({ model, input: 'Hi', max_output_tokens: null, stream: false, temperature: 0 } as never) as unknown as { max_output_tokens: number | null; usage: { output_tokens: number } };
    t.equal(none.max_output_tokens, CAP, 'echoed: the cap that applied (was null)');
    t.ok(none.usage.output_tokens <= CAP, 'and it held');
  });
});
