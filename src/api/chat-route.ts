import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createConstraint } from '../chat/constraint/index.ts';
import { HearthError } from '../errors/index.ts';
import type { TokenConstraint } from '../scheduler/types.ts';
import { planChatOffLoop, type ChatPlan } from './chat-request.ts';
import { ChoiceCancelled, runChoice, type ChoiceEvent, type ChoiceFinish } from './choice-runner.ts';
import type { ChatTokenLogprob } from './logprobs.ts';
import { mergeChoices } from './merge-choices.ts';
import type { ChatRequestBody } from './openai-types.ts';
import { schemaRef } from './openapi.ts';
import { admit, answerUnlessGone, completionId, openStream, usageOf, watchDisconnect, type ApiContext } from './route-support.ts';
import { describeSchemaErrors } from './user-schemas.ts';

// POST /v1/chat/completions. The plan (chat-request.ts) validates and renders; this file runs the n
// choices and shapes the answer: one JSON object, or OpenAI's chunk stream.

export interface ToolCallOut {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

interface ChoiceOut {
  content: string;
  reasoning: string;
  toolCalls: ToolCallOut[];
  logprobs: ChatTokenLogprob[];
  finish: ChoiceFinish;
  completionTokens: number;
}

export function registerChatRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/v1/chat/completions', { schema: { body: schemaRef('CreateChatCompletionRequest') } }, async (req, reply) => {
    const plan = await planChatOffLoop(req.body as ChatRequestBody, ctx.model, ctx.limits);
    admit(ctx, plan.n);
    const id = completionId('chatcmpl');
    const ac = watchDisconnect(reply);
    const started = performance.now();
    const iters = plan.sampling.map((sampling, i) =>
      runChoice(
        ctx.generator,
        ctx.model.tokenizer,
        {
          id: `${id}-${i}`,
          group: id,
          prompt: plan.prompt,
          maxTokens: plan.maxTokens,
          sampling,
          stopTokens: plan.stopTokens,
          stops: plan.stops,
          ...(plan.constraint === null ? {} : { constraint: withinVocab(createConstraint(plan.constraint, ctx.model.tokenizer), ctx.model.tokenizer.vocabSize) }),
          toolSyntax: plan.toolSyntax,
          ...(plan.tools === null ? {} : { toolNames: [...plan.tools.validators.keys()] }),
          wantLogprobs: plan.logprobs,
          continuation: false,
          ...(plan.reasoning === null ? {} : { reasoning: plan.reasoning }),
        },
        ac.signal,
      ),
    );
    if (ctx.logPrompts) req.log.info({ prompt: plan.promptText }, 'chat prompt');
    return await answerUnlessGone(req, reply, ac, async () => {
      if (plan.stream) return await streamChat(req, reply, ctx, plan, id, iters, started);
      return await answerChat(req, ctx, plan, id, iters, started);
    });
  });
}

/**
 * Checkpoints pad their embedding past the tokenizer's vocabulary (Qwen: 151936 rows, 151669
 * tokens). Those rows are no token and can never be part of a grammar, so the constraint only
 * sees the logits of real tokens.
 */
export function withinVocab(c: TokenConstraint, vocabSize: number): TokenConstraint {
  return {
    pick: (logits, sampling, pos) => c.pick(logits.length > vocabSize ? logits.subarray(0, vocabSize) : logits, sampling, pos),
    accept: (token) => c.accept(token),
    done: () => c.done(),
    ...(c.forced === undefined ? {} : { forced: (max: number) => c.forced!(max) }),
  };
}

async function answerChat(req: FastifyRequest, ctx: ApiContext, plan: ChatPlan, id: string, iters: AsyncGenerator<ChoiceEvent>[], started: number): Promise<unknown> {
  const outs: ChoiceOut[] = plan.sampling.map(() => ({ content: '', reasoning: '', toolCalls: [], logprobs: [], finish: 'stop', completionTokens: 0 }));
  let ttft: number | null = null;
  for await (const [i, ev] of mergeChoices(iters)) {
    ttft ??= performance.now() - started;
    const o = outs[i]!;
    if ('logprobs' in ev) o.logprobs.push(...ev.logprobs);
    switch (ev.type) {
      case 'content':
        o.content += ev.text;
        break;
      case 'reasoning':
        o.reasoning += ev.text;
        break;
      case 'tool_call_start':
        o.toolCalls[ev.index] = { id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } };
        break;
      case 'tool_call_args':
        o.toolCalls[ev.index]!.function.arguments += ev.fragment;
        break;
      case 'tool_call_end':
        break;
      case 'finish':
        o.finish = ev.reason;
        o.completionTokens = ev.completionTokens;
        break;
    }
  }
  outs.forEach((o) => checkOutput(plan, o.content, o.toolCalls, o.finish));
  const completionTokens = outs.reduce((s, o) => s + o.completionTokens, 0);
  ctx.done(req, { route: 'chat', stream: false, status: 200, error: null, promptTokens: plan.prompt.length, completionTokens, ttftMs: ttft, durationMs: performance.now() - started });
  if (ctx.logPrompts) req.log.info({ completions: outs.map((o) => o.content) }, 'chat completion');
  return {
    id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: ctx.model.id,
    system_fingerprint: ctx.fingerprint,
    choices: outs.map((o, index) => ({
      index,
      message: {
        role: 'assistant',
        // OpenAI sends content null beside tool_calls when the model said nothing else.
        content: o.toolCalls.length > 0 && o.content === '' ? null : o.content,
        refusal: null,
        ...(o.reasoning === '' ? {} : { reasoning_content: o.reasoning }),
        ...(o.toolCalls.length > 0 ? { tool_calls: o.toolCalls } : {}),
      },
      logprobs: plan.logprobs ? { content: o.logprobs, refusal: null } : null,
      finish_reason: o.finish,
    })),
    usage: usageOf(plan.prompt.length, completionTokens),
  };
}

async function streamChat(req: FastifyRequest, reply: FastifyReply, ctx: ApiContext, plan: ChatPlan, id: string, iters: AsyncGenerator<ChoiceEvent>[], started: number): Promise<FastifyReply> {
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'chat.completion.chunk', created, model: ctx.model.id, system_fingerprint: ctx.fingerprint };
  const usageNull = plan.includeUsage ? { usage: null } : {};
  const chunk = (index: number, delta: object, logprobs: readonly ChatTokenLogprob[], finish: ChoiceFinish | null): object => ({
    ...base,
    choices: [{ index, delta, logprobs: plan.logprobs && logprobs.length > 0 ? { content: logprobs, refusal: null } : null, finish_reason: finish }],
    ...usageNull,
  });
  const merged = mergeChoices(iters);
  // Hold the headers until the first event: an error before any token (queue full, no plan,
  // context) is still a plain HTTP error with its status, not a 200 stream that fails.
  const first = await merged.next();
  const sse = openStream(reply, req);
  const ttft = performance.now() - started;
  const texts = plan.sampling.map(() => '');
  const calls: ToolCallOut[][] = plan.sampling.map(() => []);
  let completionTokens = 0;
  try {
    for (let i = 0; i < plan.n; i++) await sse.send(chunk(i, { role: 'assistant', content: '', refusal: null }, [], null));
    let step = first;
    while (step.done !== true) {
      const [i, ev] = step.value;
      switch (ev.type) {
        case 'content':
          texts[i] += ev.text;
          await sse.send(chunk(i, { content: ev.text }, ev.logprobs, null));
          break;
        case 'reasoning':
          await sse.send(chunk(i, { reasoning_content: ev.text }, ev.logprobs, null));
          break;
        case 'tool_call_start':
          calls[i]![ev.index] = { id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } };
          await sse.send(chunk(i, { tool_calls: [{ index: ev.index, id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } }] }, ev.logprobs, null));
          break;
        case 'tool_call_args':
          calls[i]![ev.index]!.function.arguments += ev.fragment;
          await sse.send(chunk(i, { tool_calls: [{ index: ev.index, function: { arguments: ev.fragment } }] }, ev.logprobs, null));
          break;
        case 'tool_call_end':
          break;
        case 'finish':
          completionTokens += ev.completionTokens;
          checkOutput(plan, texts[i]!, calls[i]!, ev.reason);
          await sse.send(chunk(i, {}, ev.logprobs, ev.reason));
          break;
      }
      if (!sse.open) throw new ChoiceCancelled();
      step = await merged.next();
    }
    if (plan.includeUsage) await sse.send({ ...base, choices: [], usage: usageOf(plan.prompt.length, completionTokens) });
    sse.done();
    ctx.done(req, { route: 'chat', stream: true, status: 200, error: null, promptTokens: plan.prompt.length, completionTokens, ttftMs: ttft, durationMs: performance.now() - started });
    if (ctx.logPrompts) req.log.info({ completions: texts }, 'chat completion');
  } catch (e) {
    await merged.return(undefined);
    if (e instanceof ChoiceCancelled || !sse.open) throw new ChoiceCancelled();
    sse.fail(ctx.streamError(req, e, 'chat', plan.prompt.length, completionTokens, started));
  }
  return reply;
}

/**
 * Constrained output is checked with ajv before it leaves: a json_schema answer must parse and
 * validate, a required/named/strict call's arguments must validate against the tool's parameters,
 * and `required` never ends without a call. (A 'length' finish is truncated by the client's own
 * budget; OpenAI returns that as is.)
 */
export function checkOutput(plan: ChatPlan, content: string, calls: readonly ToolCallOut[], finish: ChoiceFinish): void {
  if (finish === 'length') return;
  const constrained = plan.constraint?.kind === 'tool_call';
  if (constrained && plan.tools !== null) {
    if ((plan.tools.mode === 'required' || plan.tools.mode === 'named') && calls.length === 0) {
      throw new HearthError('HEARTH_ERR_INTERNAL', [`tool_choice ${plan.tools.mode} ended without a tool call`]);
    }
    for (const c of calls) {
      const validate = plan.tools.validators.get(c.function.name);
      if (validate === undefined) throw new HearthError('HEARTH_ERR_INTERNAL', [`constrained call to unknown function ${c.function.name}`]);
      let args: unknown;
      try {
        args = JSON.parse(c.function.arguments);
      } catch {
        throw new HearthError('HEARTH_ERR_INTERNAL', [`constrained arguments for ${c.function.name} are not JSON`]);
      }
      if (!validate(args)) throw unenforced(`the arguments of ${c.function.name}`, describeSchemaErrors(validate));
    }
    return;
  }
  if (plan.format === null || calls.length > 0) return;
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    throw new HearthError('HEARTH_ERR_INTERNAL', ['response_format output is not valid JSON']);
  }
  if (plan.format.kind === 'json_object' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw new HearthError('HEARTH_ERR_INTERNAL', ['response_format json_object output is not an object']);
  }
  if (plan.format.kind === 'json_schema' && !plan.format.validate(value)) {
    throw unenforced(`the response (schema ${plan.format.name})`, describeSchemaErrors(plan.format.validate));
  }
}

/**
 * Constrained decoding enforces structure, types, enums, lengths and item counts; a few keywords
 * (numeric bounds, patterns, formats) are checked only afterwards. Output that fails them is never
 * returned: the client gets a 422 naming the keyword, rather than JSON that does not validate.
 */
function unenforced(what: string, why: string): HearthError {
  return new HearthError('HEARTH_ERR_UNPROCESSABLE', [`The model's output for ${what} did not satisfy the schema (${why}); constrained decoding enforces structure, types, enums and lengths, not every keyword. Relax that keyword or retry with another seed.`]);
}
