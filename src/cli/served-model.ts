import path from 'node:path';
import { openCheckpoint } from '../model/index.ts';
import type { ModelConfig } from '../model/types.ts';
import { loadTokenizer } from '../tokenizer/index.ts';
import { loadChatTemplate } from '../chat/template.ts';
import { chatTemplateSource } from '../chat/template-source.ts';
import type { ServedModel } from '../api/index.ts';
import { poolingOf } from '../api/embeddings-pooling.ts';
import { existsSync, readFileSync } from 'node:fs';
import { checkRepoId, createProgressBar, defaultModelsDir, pullModel, resolveLocalModel } from '../hub/index.ts';
import { HearthError, isHearthError } from '../errors/index.ts';
import { GGUF_MARKER, ggufView, resolveOllamaModel } from '../gguf/index.ts';
import { stateDir } from './state-dir.ts';

/** A GGUF folder's own id (the file's name, or Ollama's NAME:TAG), rather than the folder's hashed name. */
function ggufModelId(dir: string): string | null {
  try {
    const m = JSON.parse(readFileSync(path.join(dir, GGUF_MARKER), 'utf8')) as { id?: unknown };
    return typeof m.id === 'string' && m.id !== '' ? m.id : null;
  } catch {
    return null;
  }
}

/** Hub ids look like ORG/NAME; anything else is a path (and never a reason to suggest a pull). */
export function isHubId(arg: string): boolean {
  try {
    checkRepoId(arg);
    return !existsSync(arg);
  } catch {
    return false;
  }
}

/** `--model` may be a folder or an ORG/NAME pulled with `hearth pull`. */
export function resolveModelDir(arg: string): string {
  const dir = resolveLocalModel(arg);
  if (dir !== null) return dir;
  if (isHubId(arg)) throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [`${arg} (not pulled yet: hearth pull ${arg})`]);
  throw new HearthError('HEARTH_ERR_CHECKPOINT_NOT_FOUND', [`${arg} (${existsSync(arg) ? 'that folder has no config.json' : 'no such folder'})`]);
}

/**
 * `FILE.gguf` (or any shard of a split set) and `ollama:NAME[:TAG]` become a checkpoint folder under
 * hearth's state dir that reads the GGUF in place (src/gguf/gguf-view.ts); anything else: null.
 */
export async function resolveGgufModel(arg: string, home: string = stateDir()): Promise<string | null> {
  if (arg.startsWith('ollama:')) {
    const m = resolveOllamaModel(arg);
    return ggufView(m.file, home, `ollama-${m.id.replace(/[/:]/g, '-')}`, m.id);
  }
  if (/\.gguf$/i.test(arg)) return ggufView(arg, home);
  return null;
}

/**
 * Like `ollama run`: a local folder or pulled model as is; an ORG/NAME that is not here yet is
 * pulled first (progress bar on stderr, resumable). Offline, the error says so and names the demo.
 */
export async function resolveOrPullModel(arg: string, signal?: AbortSignal): Promise<string> {
  const gguf = await resolveGgufModel(arg);
  if (gguf !== null) return gguf;
  const dir = resolveLocalModel(arg);
  if (dir !== null || !isHubId(arg)) return resolveModelDir(arg);
  const modelsDir = defaultModelsDir();
  process.stderr.write(`hearth: ${arg} is not here yet; pulling it from the Hugging Face Hub into ${modelsDir} (Ctrl-C stops; the next start resumes)\n`);
  try {
    const res = await pullModel({ id: arg, modelsDir, progress: createProgressBar(process.stderr), ...(signal !== undefined ? { signal } : {}) });
    return res.dir;
  } catch (e) {
    const why = isHearthError(e) ? e.message : (e as Error).message;
    throw new HearthError('HEARTH_ERR_PULL', [arg, `${why.replace(/^pull \S+: /, '')} (offline? without --model, hearth up serves a small offline demo model whose text is random)`]);
  }
}

/** The context served when model.maxContext is null, if the checkpoint allows that much: the
 *  coding agents' 7k–17k-token prompts fit with room to answer, and the RoPE tables and KV
 *  reserve stay sized for it rather than for 131,072 positions (issue 20: 67 MB of tables per
 *  stage of a Llama 3.2 3B). Longer contexts are one setting away. */
export const DEFAULT_MAX_CONTEXT = 32_768;

/** The file the offline demo is marked with (serve-common.ts ensureDemo): such a checkpoint is
 *  served at its whole context by default, the one it was made for. */
export const DEMO_MARKER = 'hearth-demo.json';

/** Everything the API needs to know about the model it serves. */
export async function loadServedModel(dir: string, id: string | null, maxContext: number | null, notice?: string): Promise<{ model: ServedModel; config: ModelConfig }> {
  const ckpt = openCheckpoint(dir);
  const config = ckpt.config;
  ckpt.close();
  const tokenizer = await loadTokenizer(dir);
  const template = await loadChatTemplate(dir, tokenizer);
  const model: ServedModel = {
    id: id ?? ggufModelId(dir) ?? path.basename(path.resolve(dir)),
    family: config.family,
    contextLength: Math.min(maxContext ?? (existsSync(path.join(dir, DEMO_MARKER)) ? config.maxPositions : DEFAULT_MAX_CONTEXT), config.maxPositions),
    tokenizer,
    template,
    templateSource: chatTemplateSource(dir),
    created: Math.floor(Date.now() / 1000),
    ...(notice !== undefined ? { notice } : {}),
    embeddings: { pooling: poolingOf(dir), dimensions: config.hiddenSize },
  };
  return { model, config };
}
