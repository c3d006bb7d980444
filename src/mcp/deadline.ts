// A signal that aborts when its parent does or when a time runs out, held by a plain timer.
//
// Why not AbortSignal.any([parent, AbortSignal.timeout(ms)]): on Node 20 the composite keeps only a
// weak reference to the timeout signal, which can be collected before it fires — the bound then
// silently never applies (seen: a 3 s mcp.timeoutMs waited 62 s for the SDK's own request timeout
// in one run of three). A timer we own cannot be collected; clear() releases it early.

export interface Deadline {
  readonly signal: AbortSignal;
  clear(): void;
}

export function deadline(parents: readonly AbortSignal[], ms: number): Deadline {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  const onParent = (s: AbortSignal) => (): void => ac.abort(s.reason);
  const unhook: (() => void)[] = [];
  for (const p of parents) {
    if (p.aborted) {
      ac.abort(p.reason);
      break;
    }
    const f = onParent(p);
    p.addEventListener('abort', f, { once: true });
    unhook.push(() => p.removeEventListener('abort', f));
  }
  const clear = (): void => {
    clearTimeout(timer);
    for (const u of unhook) u();
  };
  ac.signal.addEventListener('abort', clear, { once: true });
  return { signal: ac.signal, clear };
}
