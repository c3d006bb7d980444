import { createConstraint } from '../chat/constraint/index.ts';
import type { TokenConstraint } from '../scheduler/types.ts';
import type { ChatPlan } from './chat-request.ts';
import { withinVocab } from './chat-route.ts';
import { runChoice, type ChoiceEvent } from './choice-runner.ts';
import type { ApiContext } from './route-support.ts';

// One choice of a chat plan, wired exactly as /v1/chat/completions wires it (constraint, tool
// syntax, reasoning split). The Responses and Messages routes translate their bodies into a chat
// plan and run it through here, so all three APIs decode, constrain and parse calls the same way.

/** `wrap`: a route's extra decoding rule around the plan's constraint (Messages' thinking budget). */
export function runPlanChoice(ctx: ApiContext, plan: ChatPlan, id: string, signal: AbortSignal, wrap?: (c: TokenConstraint | undefined) => TokenConstraint | undefined): AsyncGenerator<ChoiceEvent> {
  const tok = ctx.model.tokenizer;
  const planned = plan.constraint === null ? undefined : createConstraint(plan.constraint, tok);
  const constraint = wrap === undefined ? planned : wrap(planned);
  return runChoice(
    ctx.generator,
    tok,
    {
      id,
      group: id, // one choice: a request of its own
      prompt: plan.prompt,
      maxTokens: plan.maxTokens,
      sampling: plan.sampling[0]!,
      stopTokens: plan.stopTokens,
      stops: plan.stops,
      ...(constraint === undefined ? {} : { constraint: withinVocab(constraint, tok.vocabSize) }),
      toolSyntax: plan.toolSyntax,
      ...(plan.tools === null ? {} : { toolNames: [...plan.tools.validators.keys()] }),
      wantLogprobs: plan.logprobs,
      continuation: false,
      ...(plan.reasoning === null ? {} : { reasoning: plan.reasoning }),
    },
    signal,
  );
}
