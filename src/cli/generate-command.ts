import { parseFlags as parseArgs } from './flags.ts';
import { randomUUID } from 'node:crypto';
import { loadTokenizer } from '../tokenizer/index.ts';
import { loadChatTemplate } from '../chat/template.ts';
import { makeSamplingParams } from '../sampling/index.ts';
import { DEFAULT_SPECULATE_OPTIONS, createScheduler } from '../scheduler/index.ts';
import { QUANTS, type Quant } from '../runtime/types.ts';
import { HearthError } from '../errors/index.ts';
import { loadLocalModel } from './local-model.ts';
import { resolveGgufModel } from './served-model.ts';

export const usage = `hearth generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--top-k K]
                [--seed S] [--split 0:3,3:5 | --stages K] [--quant int4] [--threads N] [--chat]
                [--speculate K]
Prints only the generated text. --temperature 0 is greedy. --split/--stages chain that many shard
sessions in this one process. --chat renders the prompt as a user message through the chat template.
--speculate K verifies up to K draft tokens per step (prompt lookup): the same text, in
fewer passes; the counts go to stderr.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0.8' },
      'top-p': { type: 'string', default: '1' },
      'top-k': { type: 'string', default: '0' },
      seed: { type: 'string', default: '0' },
      split: { type: 'string' },
      stages: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      threads: { type: 'string' },
      chat: { type: 'boolean', default: false },
      speculate: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (values.model === undefined || values.prompt === undefined) {
    process.stderr.write(`hearth generate: --model and --prompt are required\n${usage}\n`);
    return 2;
  }
  const quant = values.quant as Quant;
  if (!QUANTS.includes(quant)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--quant must be one of ${QUANTS.join(', ')}; got ${values.quant}`]);
  const num = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--${name} must be a number; got "${v}"`]);
    return n;
  };

  // FILE.gguf and ollama:NAME[:TAG] read in place (issue 24); a folder is used as it is.
  const modelDir = (await resolveGgufModel(values.model)) ?? values.model;
  const tokenizer = await loadTokenizer(modelDir);
  let promptIds: number[];
  if (values.chat) {
    const template = await loadChatTemplate(modelDir, tokenizer);
    const text = template.render([{ role: 'user', content: values.prompt }], { addGenerationPrompt: true });
    promptIds = tokenizer.encode(text, { addSpecialTokens: false });
  } else {
    promptIds = tokenizer.encode(values.prompt, { addSpecialTokens: true });
  }
  const sampling = makeSamplingParams({
    temperature: num('temperature', values.temperature),
    topP: num('top-p', values['top-p']),
    topK: num('top-k', values['top-k']),
    seed: num('seed', values.seed),
  });
  const model = await loadLocalModel(modelDir, {
    ...(values.split === undefined ? {} : { split: values.split }),
    ...(values.stages === undefined ? {} : { stages: num('stages', values.stages) }),
    ...(values.threads === undefined ? {} : { threads: num('threads', values.threads) }),
    quant,
  });
  const maxDraft = values.speculate === undefined ? 0 : Math.max(0, Math.floor(num('speculate', values.speculate)));
  const scheduler = createScheduler(model.pipeline, {
    contextLength: model.config.maxPositions,
    prefixCache: 0,
    speculate: maxDraft > 0 ? { ...DEFAULT_SPECULATE_OPTIONS, maxDraft } : null,
  });
  const decoder = tokenizer.createDecoder({ skipSpecialTokens: true });
  try {
    for await (const ev of scheduler.generate({
      id: randomUUID(),
      prompt: Int32Array.from(promptIds),
      maxTokens: num('max-tokens', values['max-tokens']),
      sampling,
      stopTokens: tokenizer.eosTokenIds,
    })) {
      if (ev.type === 'token') process.stdout.write(decoder.push(ev.token.token));
    }
    // Only the generated text goes to stdout (scripts compare it); a newline just for terminals.
    process.stdout.write(decoder.flush() + (process.stdout.isTTY ? '\n' : ''));
    if (maxDraft > 0) {
      const s = scheduler.speculation();
      process.stderr.write(`speculation: ${s.drafted} drafted, ${s.accepted} accepted, ${s.passes} decode passes for ${s.tokens} tokens\n`);
    }
  } finally {
    await model.pipeline.close();
  }
  return 0;
}
