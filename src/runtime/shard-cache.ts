// The on-disk cache of built shards: <dir>/<key>/ holds model.onnx, the weight files it references
// (w<i>.bin: quantized or converted tensors) and manifest.json. A restart with the same checkpoint,
// layer range and build options loads the entry instead of building and quantizing again.
//
// - Atomic: an entry is built in <dir>/tmp/ and renamed into place whole, manifest last; a reader
//   never sees half an entry, and two processes building the same key keep whichever lands first.
// - Checked: the manifest lists every file's size and sha256; sizes are checked before use and the
//   hashes while onnxruntime loads (in a worker thread). A bad entry is removed and rebuilt.
// - Bounded: after each new entry, least recently used entries go until the total is under the cap.
// - fp32 tensors the graph reads in place from the checkpoint (an entry's `links`) are not copied:
//   each load hard-links the entry's files and those checkpoint files into a fresh folder under
//   <dir>/tmp/ (onnxruntime maps external data only from inside the model's folder), loads, and
//   removes the folder. The mapped pages stay valid after the names are gone.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AttentionKind } from '../model/onnx/index.ts';
import { hashFiles } from './hash-files.ts';
import { CACHE_FORMAT, type ShardKeyParts } from './shard-cache-key.ts';

export const CACHE_DIR_ENV = 'HEARTH_CACHE_DIR';
export const CACHE_MAX_ENV = 'HEARTH_CACHE_MAX_GB';
/** Default cap on the cache's size: a few shards of a 7B model. */
export const DEFAULT_CACHE_MAX_BYTES = 20 * 2 ** 30;
/** A folder left in tmp/ this long ago belongs to a process that died mid-build. */
const STALE_TMP_MS = 6 * 3600 * 1000;
const MANIFEST = 'manifest.json';

/**
 * Where built shards are kept: $HEARTH_CACHE_DIR, else $HEARTH_HOME/shards, else
 * ~/.cache/hearth/shards. null (caching off) when HEARTH_CACHE_DIR is off/none/false/0.
 */
export function resolveShardCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const v = env[CACHE_DIR_ENV];
  if (v !== undefined && v !== '') return /^(off|none|false|0)$/i.test(v) ? null : path.resolve(v);
  const home = env['HEARTH_HOME'];
  return path.join(home !== undefined && home !== '' ? home : path.join(os.homedir(), '.cache', 'hearth'), 'shards');
}

/** The size cap: $HEARTH_CACHE_MAX_GB (GiB, fractions allowed), else DEFAULT_CACHE_MAX_BYTES. */
export function resolveShardCacheMaxBytes(env: NodeJS.ProcessEnv = process.env): number {
  const gb = Number(env[CACHE_MAX_ENV]);
  return env[CACHE_MAX_ENV] !== undefined && env[CACHE_MAX_ENV] !== '' && Number.isFinite(gb) && gb >= 0 ? gb * 2 ** 30 : DEFAULT_CACHE_MAX_BYTES;
}

export interface EntryManifest {
  readonly format: number;
  readonly key: string;
  readonly parts: ShardKeyParts;
  /** The entry's own files (model.onnx, w<i>.bin) → size and sha256. */
  readonly files: Readonly<Record<string, { readonly size: number; readonly sha256: string }>>;
  /** Names the model uses for checkpoint files read in place → the file's name in the checkpoint folder. */
  readonly links: Readonly<Record<string, string>>;
  readonly attention: AttentionKind;
  readonly weightBytes: number;
  readonly lookupBytes: number;
  readonly createdAt: string;
}

function rmQuiet(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // best effort: a leftover folder is swept later
  }
}

export class ShardCache {
  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  /** Creates the folder when needed and sweeps temp folders abandoned by dead processes. */
  static open(dir: string, maxBytes: number = resolveShardCacheMaxBytes()): ShardCache {
    fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
    const tmp = path.join(dir, 'tmp');
    const now = Date.now();
    for (const name of fs.readdirSync(tmp)) {
      try {
        if (now - fs.statSync(path.join(tmp, name)).mtimeMs > STALE_TMP_MS) rmQuiet(path.join(tmp, name));
      } catch {
        // raced with its owner removing it
      }
    }
    return new ShardCache(dir, maxBytes);
  }

  /** Remembered checkpoint hashes (see ContentHashes). */
  get hashesFile(): string {
    return path.join(this.dir, 'checkpoint-hashes.json');
  }

  entryDir(key: string): string {
    return path.join(this.dir, key);
  }

  /** A fresh folder under tmp/, on the same filesystem as the entries (so rename and links work). */
  workDir(prefix: string): string {
    return fs.mkdtempSync(path.join(this.dir, 'tmp', `${prefix}-`));
  }

  /** The entry's manifest when the entry is whole (every file present with its size); a broken entry is removed. */
  read(key: string): EntryManifest | null {
    const dir = this.entryDir(key);
    let m: EntryManifest;
    try {
      m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as EntryManifest;
    } catch {
      // No manifest (or an unreadable one): no entry. A folder left without one is removed.
      if (fs.existsSync(dir)) this.remove(key);
      return null;
    }
    const whole =
      m.format === CACHE_FORMAT &&
      m.key === key &&
      typeof m.files === 'object' &&
      m.files !== null &&
      Object.entries(m.files).every(([name, f]) => {
        try {
          return fs.statSync(path.join(dir, name)).size === f.size;
        } catch {
          return false;
        }
      });
    if (!whole) {
      this.remove(key);
      return null;
    }
    return m;
  }

  /** Resolves false when any file's content no longer matches its manifest hash. */
  async verify(m: EntryManifest): Promise<boolean> {
    const dir = this.entryDir(m.key);
    const names = Object.keys(m.files);
    const got = await hashFiles(names.map((n) => path.join(dir, n)));
    return names.every((n) => got.get(path.join(dir, n)) === m.files[n]?.sha256);
  }

  /** The names in a build folder that become the entry's files (all but `exclude`). */
  static entryNames(work: string, exclude: ReadonlySet<string>): string[] {
    return fs.readdirSync(work).filter((n) => !exclude.has(n) && n !== MANIFEST);
  }

  /**
   * Writes the manifest (sizes, and the sha256 of each of `names` from `hashes`) into `work`,
   * removes `exclude` (links to checkpoint files) and moves the folder into place. Returns false
   * when an entry for the key appeared meanwhile (ours is left for the caller to remove).
   */
  commit(work: string, m: Omit<EntryManifest, 'files' | 'format' | 'createdAt'>, names: readonly string[], hashes: ReadonlyMap<string, string | null>, exclude: ReadonlySet<string>): boolean {
    const files: Record<string, { size: number; sha256: string }> = {};
    for (const n of names) {
      const sha256 = hashes.get(path.join(work, n));
      if (typeof sha256 !== 'string') throw new Error(`could not hash ${n}`);
      files[n] = { size: fs.statSync(path.join(work, n)).size, sha256 };
    }
    const manifest: EntryManifest = { ...m, format: CACHE_FORMAT, files, createdAt: new Date().toISOString() };
    for (const n of exclude) fs.rmSync(path.join(work, n), { force: true });
    fs.writeFileSync(path.join(work, MANIFEST), JSON.stringify(manifest, null, 1));
    try {
      fs.renameSync(work, this.entryDir(m.key));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
      throw e;
    }
    return true;
  }

  /**
   * A folder holding hard links to the entry's files and to the checkpoint files it reads in place
   * (under the names the model uses). The caller loads <folder>/model.onnx, then removes the folder.
   */
  linkForLoad(m: EntryManifest, checkpointDir: string): string {
    const load = this.workDir('load');
    try {
      for (const name of Object.keys(m.files)) fs.linkSync(path.join(this.entryDir(m.key), name), path.join(load, name));
      for (const [loc, name] of Object.entries(m.links)) fs.linkSync(path.join(checkpointDir, name), path.join(load, loc));
    } catch (e) {
      rmQuiet(load);
      throw e;
    }
    return load;
  }

  /** Marks the entry as just used (its manifest's mtime orders eviction). */
  touch(key: string): void {
    const now = new Date();
    try {
      fs.utimesSync(path.join(this.entryDir(key), MANIFEST), now, now);
    } catch {
      // gone meanwhile: nothing to order
    }
  }

  remove(key: string): void {
    // Rename first so no reader sees a half-deleted entry, then delete.
    const dir = this.entryDir(key);
    const doomed = path.join(this.dir, 'tmp', `gone-${key}-${process.pid}-${Math.random().toString(36).slice(2)}`);
    try {
      fs.renameSync(dir, doomed);
    } catch {
      rmQuiet(dir);
      return;
    }
    rmQuiet(doomed);
  }

  /** Entries by last use, oldest first, with their sizes. */
  entries(): { key: string; bytes: number; usedMs: number }[] {
    const out: { key: string; bytes: number; usedMs: number }[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!/^[0-9a-f]{32}$/.test(name)) continue;
      try {
        const m = JSON.parse(fs.readFileSync(path.join(this.dir, name, MANIFEST), 'utf8')) as EntryManifest;
        const bytes = Object.values(m.files).reduce((s, f) => s + f.size, 0);
        out.push({ key: name, bytes, usedMs: fs.statSync(path.join(this.dir, name, MANIFEST)).mtimeMs });
      } catch {
        continue; // being written or removed
      }
    }
    return out.sort((a, b) => a.usedMs - b.usedMs);
  }

  /** Removes least recently used entries (never `keep`) until the total fits under the cap. */
  evict(keep: string): string[] {
    const all = this.entries();
    let total = all.reduce((s, e) => s + e.bytes, 0);
    const gone: string[] = [];
    for (const e of all) {
      if (total <= this.maxBytes) break;
      if (e.key === keep) continue;
      this.remove(e.key);
      total -= e.bytes;
      gone.push(e.key);
    }
    return gone;
  }
}
