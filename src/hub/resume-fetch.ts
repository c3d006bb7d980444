// The fetch handed to @huggingface/hub. It adds the abort signal, and guards resume: if a server
// answers a `Range: bytes=N-` request with 200 and the whole file (allowed by RFC 9110), the first
// N bytes are dropped here, so appending to the partial file can never duplicate data.

export function resumeSafeFetch(base: typeof fetch, signal?: AbortSignal): typeof fetch {
  const wrapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const res = await base(input, signal === undefined ? init : { ...init, signal });
    const range = new Headers(init?.headers).get('range');
    const m = range === null ? null : /^bytes=(\d+)-/.exec(range);
    const skip = m === null ? 0 : Number(m[1]);
    if (res.status !== 200 || skip === 0 || res.body === null) return res;
    let left = skip;
    const drop = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        if (left >= chunk.length) {
          left -= chunk.length;
          return;
        }
        ctl.enqueue(left > 0 ? chunk.subarray(left) : chunk);
        left = 0;
      },
    });
    return new Response(res.body.pipeThrough(drop), { status: 206, headers: res.headers });
  };
  return wrapped as typeof fetch;
}
