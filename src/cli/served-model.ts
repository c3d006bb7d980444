import path from 'node:path';
import { openCheckpoint } from '../model/index.ts';
import type { ModelConfig } from '../model/types.ts';
import { loadTokenizer } from '../tokenizer/index.ts';
import { loadChatTemplate } from '../chat/template.ts';
import { chatTemplateSource } from '../chat/template-source.ts';
import type { ServedModel } from '../api/index.ts';
import { resolveLocalModel } from '../hub/index.ts';
import { HearthError } from '../errors/index.ts';

/** `--model` may be a folder or an ORG/NAME pulled with `hearth pull`. */
export function resolveModelDir(arg: string): string {
  const dir = resolveLocalModel(arg);
  if (dir === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [`${arg} (not a folder with config.json, and not a model pulled with \`hearth pull ${arg}\`)`]);
  return dir;
}

/** Everything the API needs to know about the model it serves. */
export async function loadServedModel(dir: string, id: string | null, maxContext: number | null): Promise<{ model: ServedModel; config: ModelConfig }> {
  const ckpt = openCheckpoint(dir);
  const config = ckpt.config;
  ckpt.close();
  const tokenizer = await loadTokenizer(dir);
  const template = await loadChatTemplate(dir, tokenizer);
  const model: ServedModel = {
    id: id ?? path.basename(path.resolve(dir)),
    family: config.family,
    contextLength: Math.min(maxContext ?? config.maxPositions, config.maxPositions),
    tokenizer,
    template,
    templateSource: chatTemplateSource(dir),
    created: Math.floor(Date.now() / 1000),
  };
  return { model, config };
}
