// Which files of a Hub repo make a checkpoint hearth can run. Repos also carry PyTorch .bin copies,
// GGUF/ONNX exports and `original/` folders many GB large; pulling those would waste the user's disk.
// When model.safetensors.index.json exists, only the shards its weight_map names are taken.

export const INDEX_FILE = 'model.safetensors.index.json';

const WANTED_RE = /^(config\.json|generation_config\.json|tokenizer[^/]*|special_tokens_map\.json|chat_template\.(json|jinja)|[^/]+\.safetensors|model\.safetensors\.index\.json)$/;

/** Top-level files only (no `/`), matching the checkpoint pattern. */
export function isCheckpointFile(repoPath: string): boolean {
  return !repoPath.includes('/') && WANTED_RE.test(repoPath);
}

/** Keeps non-weight files, and of the .safetensors only those the index names (all when no index). */
export function selectWeightFiles(paths: readonly string[], indexText: string | null): string[] {
  if (indexText === null) return [...paths];
  const map = (JSON.parse(indexText) as { weight_map?: Record<string, string> }).weight_map ?? {};
  const shards = new Set(Object.values(map));
  return paths.filter((p) => !p.endsWith('.safetensors') || shards.has(p));
}
