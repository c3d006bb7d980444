// The local folder a worker keeps for one stage: <cacheDir>/<model>/<start>-<end>/. It counts as
// complete only when its marker (written last, then the folder renamed into place) names the same
// model and range and every file still has the size the marker recorded — or, with verify 'full',
// the same sha256.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

export const STAGE_MARKER = 'hearth-stage.json';
export const STAGE_MARKER_VERSION = 1;

export interface StageMarker {
  readonly version: typeof STAGE_MARKER_VERSION;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly numLayers: number;
  /** Every file in the folder (model.safetensors included) with its size and sha256. */
  readonly files: Readonly<Record<string, { readonly size: number; readonly sha256: string }>>;
  /** sha256 of each tensor as the gateway's manifest gave it (and the fetch verified). */
  readonly tensors: Readonly<Record<string, string>>;
  readonly fetchedAt: string;
}

/** Folder-safe model id: `Qwen/Qwen2.5-0.5B` → `Qwen--Qwen2.5-0.5B`; nothing can climb out of cacheDir. */
export function stageDir(cacheDir: string, model: string, start: number, end: number): string {
  const safe = model.replace(/\//g, '--').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return path.join(path.resolve(cacheDir), safe, `${start}-${end}`);
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function readValidMarker(
  dir: string,
  want: { model: string; start: number; end: number; numLayers: number },
  verify: 'size' | 'full',
): Promise<StageMarker | null> {
  let marker: StageMarker;
  try {
    marker = JSON.parse(await readFile(path.join(dir, STAGE_MARKER), 'utf8')) as StageMarker;
  } catch {
    return null;
  }
  if (marker.version !== STAGE_MARKER_VERSION || marker.model !== want.model || marker.start !== want.start
    || marker.end !== want.end || marker.numLayers !== want.numLayers || typeof marker.files !== 'object') return null;
  for (const [name, rec] of Object.entries(marker.files)) {
    const abs = path.join(dir, path.basename(name));
    const st = await stat(abs).catch(() => null);
    if (st === null || st.size !== rec.size) return null;
    if (verify === 'full' && (await sha256File(abs)) !== rec.sha256) return null;
  }
  return marker;
}
