import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ChoiceCancelled, runChoice, type ChoiceEvent, type ChoiceFinish } from './choice-runner.ts';
import { emptyCompletionLogprobs, pushCompletionLogprob, type CompletionLogprobs } from './logprobs.ts';
import { mergeChoices } from './merge-choices.ts';
import { planCompletionOffLoop, type CompletionPlan } from './completion-request.ts';
import type { CompletionRequestBody } from './openai-types.ts';
import { schemaRef } from './openapi.ts';
import { admit, answerUnlessGone, completionId, openStream, usageOf, watchDisconnect, type ApiContext } from './route-support.ts';

// POST /v1/completions: the legacy text completion. Each prompt gets n choices, numbered
// prompt_index × n + i as OpenAI numbers them.

interface Slot {
  readonly prompt: number;
  text: string;
  logprobs: CompletionLogprobs;
  finish: ChoiceFinish;
  tokens: number;
}

export function registerCompletionsRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/v1/completions', { schema: { body: schemaRef('CreateCompletionRequest') } }, async (req, reply) => {
    const plan = await planCompletionOffLoop(req.body as CompletionRequestBody, ctx.model, ctx.limits);
    admit(ctx, plan.n * plan.prompts.length);
    const id = completionId('cmpl');
    const ac = watchDisconnect(reply);
    const started = performance.now();
    const slots: Slot[] = [];
    const iters: AsyncGenerator<ChoiceEvent>[] = [];
    plan.prompts.forEach((p, k) => {
      for (let i = 0; i < plan.n; i++) {
        slots.push({ prompt: k, text: plan.echo ? p.text : '', logprobs: emptyCompletionLogprobs(), finish: 'stop', tokens: 0 });
        iters.push(
          runChoice(
            ctx.generator,
            ctx.model.tokenizer,
            { id: `${id}-${k * plan.n + i}`, group: id, prompt: p.ids, maxTokens: plan.maxTokens[k]!, sampling: plan.sampling[i]!, stopTokens: plan.stopTokens, stops: plan.stops, toolSyntax: null, wantLogprobs: plan.logprobs >= 0, continuation: true },
            ac.signal,
          ),
        );
      }
    });
    const promptTokens = plan.prompts.reduce((s, p) => s + p.ids.length, 0);
    return await answerUnlessGone(req, reply, ac, async () => {
        if (plan.stream) return await streamCompletion(req, reply, ctx, plan, id, slots, iters, promptTokens, started);
        let ttft: number | null = null;
        for await (const [i, ev] of mergeChoices(iters)) {
          ttft ??= performance.now() - started;
          apply(slots[i]!, ev, plan.logprobs >= 0);
        }
        const completionTokens = slots.reduce((s, x) => s + x.tokens, 0);
        ctx.done(req, { route: 'completions', stream: false, status: 200, error: null, promptTokens, completionTokens, ttftMs: ttft, durationMs: performance.now() - started });
        return {
          id,
          object: 'text_completion',
          created: Math.floor(Date.now() / 1000),
          model: ctx.model.id,
          system_fingerprint: ctx.fingerprint,
          choices: slots.map((s, index) => ({ index, text: s.text, logprobs: plan.logprobs >= 0 ? s.logprobs : null, finish_reason: s.finish })),
          usage: usageOf(promptTokens, completionTokens),
        };
    });
  });
}

/** Folds one event into a choice; returns the text and logprobs it added (for a stream chunk). */
function apply(s: Slot, ev: ChoiceEvent, wantLogprobs: boolean): { text: string; logprobs: CompletionLogprobs } {
  const added = { text: '', logprobs: emptyCompletionLogprobs() };
  if (ev.type === 'tool_call_end') return added;
  if (wantLogprobs) {
    // Each token's offset is where the text stood when it arrived (text is released in step with
    // tokens, except what a stop string holds back).
    for (const lp of ev.logprobs) {
      pushCompletionLogprob(s.logprobs, lp, s.text.length);
      pushCompletionLogprob(added.logprobs, lp, s.text.length);
    }
  }
  if (ev.type === 'content') {
    s.text += ev.text;
    added.text = ev.text;
  } else if (ev.type === 'finish') {
    s.finish = ev.reason;
    s.tokens = ev.completionTokens;
  }
  return added;
}

async function streamCompletion(req: FastifyRequest, reply: FastifyReply, ctx: ApiContext, plan: CompletionPlan, id: string, slots: Slot[], iters: AsyncGenerator<ChoiceEvent>[], promptTokens: number, started: number): Promise<FastifyReply> {
  const base = { id, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: ctx.model.id, system_fingerprint: ctx.fingerprint };
  const usageNull = plan.includeUsage ? { usage: null } : {};
  const merged = mergeChoices(iters);
  const first = await merged.next();
  const sse = openStream(reply, req);
  const ttft = performance.now() - started;
  try {
    if (plan.echo) for (let i = 0; i < slots.length; i++) await sse.send({ ...base, choices: [{ index: i, text: slots[i]!.text, logprobs: null, finish_reason: null }], ...usageNull });
    let step = first;
    while (step.done !== true) {
      const [i, ev] = step.value;
      const added = apply(slots[i]!, ev, plan.logprobs >= 0);
      const finish = ev.type === 'finish' ? ev.reason : null;
      if (added.text !== '' || finish !== null) {
        await sse.send({ ...base, choices: [{ index: i, text: added.text, logprobs: plan.logprobs >= 0 ? added.logprobs : null, finish_reason: finish }], ...usageNull });
      }
      if (!sse.open) throw new ChoiceCancelled();
      step = await merged.next();
    }
    const completionTokens = slots.reduce((s, x) => s + x.tokens, 0);
    if (plan.includeUsage) await sse.send({ ...base, choices: [], usage: usageOf(promptTokens, completionTokens) });
    sse.done();
    ctx.done(req, { route: 'completions', stream: true, status: 200, error: null, promptTokens, completionTokens, ttftMs: ttft, durationMs: performance.now() - started });
  } catch (e) {
    await merged.return(undefined);
    if (e instanceof ChoiceCancelled || !sse.open) throw new ChoiceCancelled();
    sse.fail(ctx.streamError(req, e, 'completions', promptTokens, slots.reduce((s, x) => s + x.tokens, 0), started));
  }
  return reply;
}
