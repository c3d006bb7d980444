/**
 * Finished sequences kept on the stages (their KV not freed) so a later request that starts with the
 * same tokens forks their KV instead of recomputing it. Agent loops resend the whole conversation on
 * every turn, so the shared prefix is most of the prompt. Entries belong to one plan epoch: a new
 * plan means fresh stages, so the cache is dropped.
 */
export interface PrefixEntry {
  readonly seq: string;
  readonly tokens: Int32Array;
  readonly epoch: number;
  inUse: number;
  lastUsed: number;
}

export class PrefixCache {
  private entries: PrefixEntry[] = [];
  private readonly capacity: number;
  private readonly minPrefix: number;
  private readonly evict: (seq: string) => void;
  private clock = 0;

  constructor(opts: { capacity: number; minPrefix: number; evict: (seq: string) => void }) {
    this.capacity = opts.capacity;
    this.minPrefix = opts.minPrefix;
    this.evict = opts.evict;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entry sharing the longest prefix with `prompt` (at least minPrefix, leaving ≥ 1 token to feed). */
  lookup(prompt: Int32Array, epoch: number): { entry: PrefixEntry; len: number } | null {
    let best: PrefixEntry | null = null;
    let bestLen = 0;
    for (const e of this.entries) {
      if (e.epoch !== epoch) continue;
      const max = Math.min(e.tokens.length, prompt.length - 1);
      let i = 0;
      while (i < max && e.tokens[i] === prompt[i]) i++;
      if (i > bestLen) {
        best = e;
        bestLen = i;
      }
    }
    if (best === null || bestLen < this.minPrefix) return null;
    best.lastUsed = ++this.clock;
    return { entry: best, len: bestLen };
  }

  /** Keeps seq's KV; returns false (caller frees it) when the cache is off. */
  add(seq: string, tokens: Int32Array, epoch: number): boolean {
    if (this.capacity <= 0) return false;
    // Drop entries of older plans and entries this one makes redundant (its own prefixes).
    this.entries = this.entries.filter((e) => {
      const stale = e.epoch !== epoch || (e.inUse === 0 && isPrefixOf(e.tokens, tokens));
      if (stale) this.evict(e.seq);
      return !stale;
    });
    this.entries.push({ seq, tokens, epoch, inUse: 0, lastUsed: ++this.clock });
    while (this.entries.length > this.capacity) {
      let victim = -1;
      for (let i = 0; i < this.entries.length; i++) {
        const e = this.entries[i]!;
        if (e.inUse === 0 && (victim < 0 || e.lastUsed < this.entries[victim]!.lastUsed)) victim = i;
      }
      if (victim < 0) break;
      const [gone] = this.entries.splice(victim, 1);
      if (gone !== undefined) this.evict(gone.seq);
    }
    return true;
  }

  clear(): void {
    for (const e of this.entries) this.evict(e.seq);
    this.entries = [];
  }
}

function isPrefixOf(a: Int32Array, b: Int32Array): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
