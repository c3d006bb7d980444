// What a cached shard is keyed by: the checkpoint's content, the layer range and build options, and
// the version of the code that builds graphs.
//
// Checkpoint content is the sha256 of each safetensors file the range reads (plus config.json),
// computed once per file and remembered by its identity (device, inode, size, mtime in ns). Why a
// full hash rather than a sample of headers and chunks: a sample misses edits that touch a few
// tensors (a merged LoRA changes a few MB of a multi-GB file), and a false hit serves wrong
// answers silently. A full read costs about a second per GB once; after that a stat decides. The
// hash is computed while the shard builds (see hashFiles), so a first load does not wait for it.

import { createHash } from 'node:crypto';
import { sidecarDigest } from './digest-sidecar.ts';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ShardBuildSpec } from '../model/shard-build-spec.ts';

/** Bump when the layout of a cache entry (files, manifest) changes. */
export const CACHE_FORMAT = 1;

const MODEL_SRC = fileURLToPath(new URL('../model/', import.meta.url));

function sourceFiles(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? sourceFiles(p) : /\.(ts|js|mjs)$/.test(e.name) ? [p] : [];
    })
    .sort();
}

let builderMemo: string | null = null;

/**
 * A hash of the source text of everything under src/model (graph builder, quantizer, checkpoint
 * reader): a change to how graphs or weights are made never meets an entry built by older code.
 */
export function builderVersion(): string {
  if (builderMemo !== null) return builderMemo;
  const h = createHash('sha256');
  const files = sourceFiles(MODEL_SRC);
  // Without readable sources (a bundled build) nothing can tell versions apart: no entry is reused.
  if (files.length === 0) h.update(`unversioned ${process.pid} ${Date.now()} ${Math.random()}`);
  for (const f of files) h.update(path.relative(MODEL_SRC, f)).update('\0').update(fs.readFileSync(f)).update('\0');
  builderMemo = h.digest('hex');
  return builderMemo;
}

interface MemoRecord {
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly sha256: string;
}

function identity(file: string): Omit<MemoRecord, 'sha256'> {
  const st = fs.statSync(file, { bigint: true });
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs) };
}

/** Remembered content hashes, one JSON file in the cache folder. */
export class ContentHashes {
  private records: Record<string, MemoRecord> = {};
  private readonly fresh = new Map<string, MemoRecord>();

  constructor(private readonly file: string) {
    this.records = ContentHashes.read(file);
  }

  private static read(file: string): Record<string, MemoRecord> {
    try {
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, MemoRecord>) : {};
    } catch {
      return {};
    }
  }

  /** The remembered hash of `file`, when the file is still the one that was hashed. */
  known(file: string): string | null {
    const key = fs.realpathSync(file);
    const r = this.fresh.get(key) ?? this.records[key];
    if (r !== undefined && typeof r.sha256 === 'string') {
      const now = identity(key);
      if (now.dev === r.dev && now.ino === r.ino && now.size === r.size && now.mtimeNs === r.mtimeNs) return r.sha256;
    }
    // A folder hearth wrote keeps its digests beside the data: found after a move, too.
    return sidecarDigest(key);
  }

  /** Records a hash taken of `file`, with the identity `before` it had when hashing started. */
  remember(file: string, sha256: string, before: Omit<MemoRecord, 'sha256'>): void {
    const key = fs.realpathSync(file);
    const now = identity(key);
    // Changed while being read: the hash describes neither version; don't keep it.
    if (now.ino !== before.ino || now.size !== before.size || now.mtimeNs !== before.mtimeNs) return;
    this.fresh.set(key, { ...now, sha256 });
  }

  /** Merges what this process learned into the file (other processes may have written meanwhile). */
  save(): void {
    if (this.fresh.size === 0) return;
    const merged = { ...ContentHashes.read(this.file), ...Object.fromEntries(this.fresh) };
    const tmp = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(merged, null, 1));
    fs.renameSync(tmp, this.file);
    this.records = merged;
    this.fresh.clear();
  }
}

export { identity as fileIdentity };

/** Everything a built shard depends on. Its hash names the cache entry. */
export interface ShardKeyParts {
  readonly format: number;
  readonly builder: string;
  /** config.json's sha256. */
  readonly config: string;
  /** Checkpoint files the range reads, by name inside the checkpoint folder, with their sha256. */
  readonly files: readonly { readonly name: string; readonly sha256: string }[];
  readonly spec: ShardBuildSpec;
  readonly build: {
    readonly attention: string;
    readonly accuracyLevel: number | null;
    readonly headSliceRows: number | null;
    readonly kvDtype: string;
    readonly int4Block: number;
    /** Bits of the embedding table and lm_head in int4 models (4 or 8). */
    readonly vocabBits: number;
    /** int4 with uint4 zero points (asymmetric); absent when symmetric, so older keys still match. */
    readonly int4ZeroPoints?: true;
    /** fp32 tensors referenced in place from the checkpoint (true) or copied into the entry. */
    readonly mapped: boolean;
  };
}

export function shardKey(parts: ShardKeyParts): string {
  const canonical = JSON.stringify({ ...parts, spec: { start: parts.spec.start, end: parts.spec.end, quant: parts.spec.quant } });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}
