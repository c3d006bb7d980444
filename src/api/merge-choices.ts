// Interleaves the events of n choices as they come (n > 1 streams every choice at once, as OpenAI
// does), tagging each with its choice index. Never leaves a promise rejection unobserved: the
// first failure is rethrown once, and every iterator is returned so the generator frees its
// sequence.

type Settled<T> = { readonly i: number; readonly r?: IteratorResult<T>; readonly e?: unknown; readonly failed: boolean };

export async function* mergeChoices<T>(iters: readonly AsyncIterator<T>[]): AsyncGenerator<readonly [number, T]> {
  const pending = new Map<number, Promise<Settled<T>>>();
  const pull = (i: number): void => {
    pending.set(
      i,
      iters[i]!.next().then(
        (r) => ({ i, r, failed: false }),
        (e: unknown) => ({ i, e, failed: true }),
      ),
    );
  };
  for (let i = 0; i < iters.length; i++) pull(i);
  try {
    while (pending.size > 0) {
      const s = await Promise.race(pending.values());
      if (s.failed) throw s.e;
      if (s.r!.done === true) {
        pending.delete(s.i);
        continue;
      }
      pull(s.i);
      yield [s.i, s.r!.value] as const;
    }
  } finally {
    // Ends the others (their `finally` blocks free KV). return() on a generator that is still
    // running queues behind its current step; it must not throw into us.
    for (const i of pending.keys()) void iters[i]!.return?.(undefined)?.catch(() => undefined);
  }
}
