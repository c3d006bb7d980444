import { existsSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { planCompletion } from '../src/api/index.ts';
import type { ServedModel } from '../src/api/index.ts';
import { fimTokens } from '../src/api/fim.ts';
import { isHearthError } from '../src/errors/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { repoRoot, tinyCheckpoint } from './helpers/hearth.ts';

// Fill-in-the-middle prompts are assembled from token ids in the model's own layout; a tokenizer
// without FIM tokens gets a 400 naming `suffix`. (The end-to-end request is in e2e-agents.)

const served = async (dir: string): Promise<ServedModel> => {
  const tokenizer = await loadTokenizer(dir);
  return { id: path.basename(dir), family: 'qwen3', contextLength: 2048, tokenizer, template: { render: () => '' }, templateSource: '', created: 0 };
};

t.test('Qwen tokens: <|fim_prefix|> P <|fim_suffix|> S <|fim_middle|>, FIM stops added', async (t) => {
  const model = await served(await tinyCheckpoint('qwen3'));
  const tok = model.tokenizer;
  const fim = fimTokens(tok)!;
  t.equal(fim.family, 'Qwen');
  const plan = planCompletion({ model: model.id, prompt: 'def f(x):', suffix: '\n    return y\n', max_tokens: 4 }, model);
  const ids = [...plan.prompts[0]!.ids];
  t.same(ids, [tok.idOf('<|fim_prefix|>'), ...tok.encode('def f(x):'), tok.idOf('<|fim_suffix|>'), ...tok.encode('\n    return y\n'), tok.idOf('<|fim_middle|>')]);
  t.ok(plan.stopTokens.includes(tok.idOf('<|file_sep|>')!), '<|file_sep|> ends the middle');
  const err = (() => { try { planCompletion({ model: model.id, prompt: 'a', suffix: 'b', echo: true }, model); } catch (e) { return e; } return null; })();
  t.ok(isHearthError(err) && err.param === 'echo', 'echo with suffix is refused');
});

const stories = path.resolve(repoRoot, '../shared/models/stories260k');
t.test('no FIM tokens: a 400 that says so', { skip: existsSync(stories) ? false : 'no ../shared/models/stories260k' }, async (t) => {
  const model = await served(stories);
  t.equal(fimTokens(model.tokenizer), null);
  let err: unknown;
  try {
    planCompletion({ model: model.id, prompt: 'Once upon a time', suffix: ' The end.' }, model);
  } catch (e) {
    err = e;
  }
  t.ok(isHearthError(err, 'HEARTH_ERR_FIM_UNSUPPORTED'));
  t.equal((err as { status: number }).status, 400);
  t.equal((err as { param: string }).param, 'suffix');
  t.match((err as Error).message, /fill-in-the-middle needs FIM tokens/);
  t.doesNotThrow(() => planCompletion({ model: model.id, prompt: 'Once upon a time', suffix: '' }, model), 'an empty suffix is a plain completion');
});
