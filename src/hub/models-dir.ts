// Where pulled checkpoints live: <models dir>/<org>/<name>/, a plain Hugging Face folder that
// `--model DIR` takes as is. Default ~/.cache/hearth/models; HEARTH_MODELS_DIR overrides it.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { HearthError } from '../errors/index.ts';

export const MODELS_DIR_ENV = 'HEARTH_MODELS_DIR';

export function defaultModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[MODELS_DIR_ENV];
  return path.resolve(fromEnv !== undefined && fromEnv !== '' ? fromEnv : path.join(os.homedir(), '.cache', 'hearth', 'models'));
}

/** Hub repo ids are `org/name` of [A-Za-z0-9._-]; anything else (.., extra slashes) is refused. */
const REPO_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function checkRepoId(id: string): void {
  if (!REPO_ID_RE.test(id) || id.includes('..')) {
    throw new HearthError('HEARTH_ERR_PULL', [id, 'expected a Hub model id like ORG/NAME (e.g. Qwen/Qwen2.5-0.5B-Instruct)']);
  }
}

export function modelDirFor(modelsDir: string, id: string): string {
  checkRepoId(id);
  const [org = '', name = ''] = id.split('/');
  return path.join(path.resolve(modelsDir), org, name);
}

/**
 * What `--model X` names: an existing folder as given, else a pulled model id (ORG/NAME) under the
 * models dir. Returns null when neither exists, so the caller can suggest `hearth pull X`.
 */
export function resolveLocalModel(arg: string, modelsDir: string = defaultModelsDir()): string | null {
  if (existsSync(path.join(arg, 'config.json'))) return path.resolve(arg);
  if (!REPO_ID_RE.test(arg)) return null;
  const dir = modelDirFor(modelsDir, arg);
  return existsSync(path.join(dir, 'config.json')) ? dir : null;
}
