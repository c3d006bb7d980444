import t from 'tap';
import OpenAI from 'openai';
import { natsMissing } from './helpers/nats.ts';
import { startUp } from './helpers/cli.ts';

// Issue 21 item 4: `hearth up` with no --model serves the offline demo, and the demo serves agents.
// - Its context is at least 32k tokens (131,072: coding agents send 7k-17k-token prompts and ask
//   for 32k-64k tokens), and a prompt of agent size is taken (was: 4,096, context_length_exceeded).
// - Its turns end: asked with no max_tokens (up to the context's end), a chat stops with
//   finish_reason "stop" within a few hundred tokens (was: random text to the length limit). The
//   demo's weights are random; its checkpoint is generated with a steady lift on <|im_end|>.
// The real `hearth up` (nats-server, gateway, worker processes), the openai SDK as the client.

t.test('the offline demo: an agent-size context, and turns that end', { skip: natsMissing() }, async (t) => {
  const up = await startUp(t, [], { ready: true });
  const client = new OpenAI({ apiKey: 'none', baseURL: `${up.origin}/v1`, maxRetries: 0, timeout: 180_000 });
  const models = (await (await fetch(`${up.origin}/v1/models`)).json()) as { data: { id: string; max_model_len: number }[] };
  const model = models.data[0]!.id;
  t.equal(model, 'hearth-demo-tiny-qwen3', 'the demo');
  t.ok(models.data[0]!.max_model_len >= 32_768, `context ${models.data[0]!.max_model_len} >= 32k`);

  for (const [i, content] of ['Hello', 'Write a function that adds two numbers.', 'Tell me a story about a dog.'].entries()) {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content }], seed: i });
    t.equal(r.choices[0]?.finish_reason, 'stop', `"${content}": the turn ends`);
    t.ok((r.usage?.completion_tokens ?? Infinity) < 400, `within a few hundred tokens (${r.usage?.completion_tokens})`);
  }
  const streamed = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi again' }], stream: true, temperature: 0 });
  let finish: string | null = null;
  for await (const ch of streamed) finish = ch.choices[0]?.finish_reason ?? finish;
  t.equal(finish, 'stop', 'greedy and streamed, it ends too');

  // An agent-size prompt (about 9k tokens, Codex CLI's first turn) fits and is answered.
  const big = await client.chat.completions.create({ model, messages: [{ role: 'system', content: 'You are a coding agent. '.repeat(1500) }, { role: 'user', content: 'Say hi' }], seed: 7 });
  t.ok((big.usage?.prompt_tokens ?? 0) > 8000, `a ${big.usage?.prompt_tokens}-token prompt is served (the demo had 4,096)`);
  t.equal(big.choices[0]?.finish_reason, 'stop', 'and its turn ends');
});
