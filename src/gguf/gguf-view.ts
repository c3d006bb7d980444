// `--model FILE.gguf` (or an Ollama blob): a small folder in hearth's state dir that the rest of
// hearth reads as a checkpoint folder — config.json, generation_config.json, tokenizer.json and
// tokenizer_config.json written from the GGUF's metadata, a link to the GGUF file(s), and
// hearth-gguf.json: the tensor table (HF name, ggml type, shape, byte range in the linked file,
// rows to un-permute). Nothing is decoded here: a process that runs layers decodes them when it
// first reads them (gguf-checkpoint.ts); the gateway serves the linked file's byte ranges.
// The folder is named by the GGUF's sha256, so the shard cache and workers key on the GGUF digest.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { HearthError } from '../errors/index.ts';
import { ggufTokenizerFiles } from '../tokenizer/gguf-tokenizer.ts';
import { dequantize } from './dequantize.ts';
import { openGguf, metaString } from './gguf-file.ts';
import { ggmlTypeName, isSupportedGgmlType } from './ggml-types.ts';
import { hfView } from './hf-mapping.ts';

export const GGUF_MARKER = 'hearth-gguf.json';
export const GGUF_MARKER_VERSION = 1;

export interface GgufTableEntry {
  readonly name: string;
  /** ggml type name (F32, Q4_0, …). */
  readonly type: string;
  /** HF shape. */
  readonly shape: readonly number[];
  /** Base name of the linked GGUF file in the folder. */
  readonly file: string;
  readonly byteStart: number;
  readonly byteEnd: number;
  /** Heads whose q/k rows llama.cpp permuted; decoded back to HF order. */
  readonly unpermute: number | null;
}

export interface GgufMarker {
  readonly version: typeof GGUF_MARKER_VERSION;
  /** sha256 of the GGUF (of its first shard's bytes followed by the others', for a split set). */
  readonly digest: string;
  readonly source: string;
  /** The model id to serve it under when none is configured (file name, or Ollama's NAME:TAG). */
  readonly id?: string;
  readonly tensors: readonly GgufTableEntry[];
}

async function sha256Files(files: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) for await (const c of createReadStream(f, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** Ollama names blobs by their sha256 (`sha256-<hex>`): that is the digest, no need to read it. */
function digestFromName(file: string): string | null {
  const m = /^sha256[-:]([0-9a-f]{64})$/.exec(path.basename(file));
  return m === null ? null : (m[1] as string);
}

function writeJson(file: string, v: unknown): void {
  fs.writeFileSync(file, JSON.stringify(v, null, 1));
}

/** Memo of file identity → digest, so a restart does not hash gigabytes again. */
function memoDigest(stateDir: string, files: readonly string[]): { get(): string | null; put(d: string): void } {
  const memo = path.join(stateDir, 'gguf', 'digests.json');
  const key = files.map((f) => {
    const st = fs.statSync(f);
    return `${fs.realpathSync(f)}:${st.size}:${Math.trunc(st.mtimeMs)}:${st.ino}`;
  }).join('|');
  const read = (): Record<string, string> => {
    try {
      return JSON.parse(fs.readFileSync(memo, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  };
  return {
    get: () => read()[key] ?? null,
    put: (d) => {
      fs.mkdirSync(path.dirname(memo), { recursive: true });
      writeJson(memo, { ...read(), [key]: d });
    },
  };
}

/**
 * The checkpoint folder for a GGUF file (or split set, or Ollama blob) under `stateDir`/gguf,
 * made on first use. `name` names the folder (the model id by default).
 */
export async function ggufView(file: string, stateDir: string, name?: string, id?: string): Promise<string> {
  if (!fs.existsSync(file)) throw new HearthError('HEARTH_ERR_GGUF_NOT_FOUND', [`${file} (no such file)`]);
  const model = await openGguf(file);
  const where = path.basename(file);
  const memo = memoDigest(stateDir, model.files);
  let digest = model.files.length === 1 ? digestFromName(model.files[0] as string) : null;
  digest ??= memo.get();
  if (digest === null) {
    digest = await sha256Files(model.files);
    memo.put(digest);
  }
  const label = (name ?? metaString(model.metadata, 'general.name') ?? where.replace(/\.gguf$/, '')).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60);
  const dir = path.join(stateDir, 'gguf', `${label}-${digest.slice(0, 16)}`);
  if (fs.existsSync(path.join(dir, GGUF_MARKER))) return dir;

  const ropeT = model.tensors.get('rope_freqs.weight');
  let ropeFreqs: Float32Array | null = null;
  if (ropeT !== undefined && ropeT.byteEnd !== null) {
    const n = ropeT.dims.reduce((a, b) => a * b, 1);
    const raw = Buffer.alloc(ropeT.byteEnd - ropeT.byteStart);
    const fd = fs.openSync(ropeT.file, 'r');
    try {
      fs.readSync(fd, raw, 0, raw.length, ropeT.byteStart);
    } finally {
      fs.closeSync(fd);
    }
    ropeFreqs = new Float32Array(n);
    dequantize(ropeT.type, raw, n, ropeFreqs);
  }
  const view = hfView(model, where, ropeFreqs);
  const links = new Map(model.files.map((f, i) => [f, model.files.length === 1 ? 'model.gguf' : `model-${String(i + 1).padStart(5, '0')}-of-${String(model.files.length).padStart(5, '0')}.gguf`]));
  const tensors: GgufTableEntry[] = view.tensors.map((t) => {
    if (!isSupportedGgmlType(t.tensor.type) || t.tensor.byteEnd === null) {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [where, `tensor ${t.tensor.name} is ${ggmlTypeName(t.tensor.type)}; hearth decodes F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K`]);
    }
    return {
      name: t.hfName, type: ggmlTypeName(t.tensor.type), shape: t.shape, file: links.get(t.tensor.file) as string,
      byteStart: t.tensor.byteStart, byteEnd: t.tensor.byteEnd, unpermute: t.unpermuteHeads,
    };
  });
  const template = metaString(model.metadata, 'tokenizer.chat_template');
  let tok;
  try {
    tok = ggufTokenizerFiles(model.metadata, template);
  } catch (e) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_UNSUPPORTED', [where, (e as Error).message]);
  }
  if (tok === null) throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [where, 'the GGUF carries no tokenizer (tokenizer.ggml.tokens)']);

  const tmp = `${dir}.partial-${process.pid}-${Math.random().toString(36).slice(2)}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  writeJson(path.join(tmp, 'config.json'), view.config);
  writeJson(path.join(tmp, 'generation_config.json'), view.generationConfig);
  writeJson(path.join(tmp, 'tokenizer.json'), tok.tokenizerJson);
  writeJson(path.join(tmp, 'tokenizer_config.json'), tok.tokenizerConfig);
  for (const [src, link] of links) fs.symlinkSync(fs.realpathSync(src), path.join(tmp, link));
  const marker: GgufMarker = { version: GGUF_MARKER_VERSION, digest, source: where, id: id ?? where.replace(/\.gguf$/i, '').replace(/-00001-of-\d{5}$/, ''), tensors };
  writeJson(path.join(tmp, GGUF_MARKER), marker);
  // Another process making the same folder at the same time: the first rename wins (a folder is
  // only ever complete, its marker written before the rename), the others use it.
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dir, GGUF_MARKER))) throw e;
  }
  return dir;
}
