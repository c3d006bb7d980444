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

export function deadline(parent: AbortSignal, ms: number): Deadline {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  const onParent = (): void => ac.abort(parent.reason);
  const clear = (): void => {
    clearTimeout(timer);
    parent.removeEventListener('abort', onParent);
  };
  ac.signal.addEventListener('abort', clear, { once: true });
  if (parent.aborted) onParent();
  else parent.addEventListener('abort', onParent, { once: true });
  return { signal: ac.signal, clear };
}
