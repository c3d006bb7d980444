// `--model ollama:NAME[:TAG]`: the GGUF blob Ollama already has for a model, read in place (never
// written). Ollama's store ($OLLAMA_MODELS, else ~/.ollama/models) keeps a manifest per model at
// manifests/<registry>/<namespace>/<name>/<tag> — an OCI image manifest whose layer of mediaType
// application/vnd.ollama.image.model is the GGUF — and the blobs at blobs/sha256-<hex>.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HearthError } from '../errors/index.ts';

const MODEL_LAYER = 'application/vnd.ollama.image.model';
const TEMPLATE_LAYER = 'application/vnd.ollama.image.template';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function ollamaModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  const v = env['OLLAMA_MODELS'];
  return v !== undefined && v !== '' ? path.resolve(v) : path.join(os.homedir(), '.ollama', 'models');
}

export interface OllamaModel {
  /** The GGUF blob. */
  readonly file: string;
  /** NAME:TAG as Ollama shows it (the served model id). */
  readonly id: string;
  readonly digest: string;
  /** Ollama's Go template layer, when the model has one (informational: the GGUF's jinja template is the one used). */
  readonly hasGoTemplate: boolean;
}

/** Parses `ollama:[NAMESPACE/]NAME[:TAG]` and finds its GGUF blob. */
export function resolveOllamaModel(ref: string, env: NodeJS.ProcessEnv = process.env): OllamaModel {
  const spec = ref.replace(/^ollama:/, '');
  const [namePart, tag = 'latest'] = spec.split(':') as [string, string | undefined];
  const parts = namePart.split('/');
  const [ns, name] = parts.length === 2 ? (parts as [string, string]) : ['library', parts[0] ?? ''];
  if (parts.length > 2 || ![ns, name, tag].every((p) => NAME_RE.test(p))) {
    throw new HearthError('HEARTH_ERR_GGUF_NOT_FOUND', [`${ref} (expected ollama:NAME[:TAG])`]);
  }
  const root = ollamaModelsDir(env);
  const manifestFile = path.join(root, 'manifests', 'registry.ollama.ai', ns, name, tag);
  let manifest: { layers?: { mediaType?: string; digest?: string }[] };
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as typeof manifest;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HearthError('HEARTH_ERR_GGUF_NOT_FOUND', [`${ref} (${code === 'ENOENT' ? `Ollama has no ${name}:${tag} in ${root}: ollama pull ${name}:${tag}` : `unreadable manifest ${manifestFile}: ${(e as Error).message}`})`]);
  }
  const layer = (manifest.layers ?? []).find((l) => l.mediaType === MODEL_LAYER);
  const m = /^sha256:([0-9a-f]{64})$/.exec(layer?.digest ?? '');
  if (m === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [manifestFile, `no ${MODEL_LAYER} layer with a sha256 digest`]);
  const file = path.join(root, 'blobs', `sha256-${m[1]}`);
  if (!fs.existsSync(file)) throw new HearthError('HEARTH_ERR_GGUF_NOT_FOUND', [`${ref} (its blob ${file} is missing)`]);
  return { file, id: `${ns === 'library' ? '' : `${ns}/`}${name}:${tag}`, digest: m[1] as string, hasGoTemplate: (manifest.layers ?? []).some((l) => l.mediaType === TEMPLATE_LAYER) };
}
