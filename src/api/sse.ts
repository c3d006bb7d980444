import type { OpenAIErrorBody } from './http-errors.ts';

// Server-sent events exactly as OpenAI streams them (and as openai-node's SSE decoder reads them):
// each event is one `data: <json>` line and a blank line; the stream ends with `data: [DONE]`. An error
// after the headers went out is `data: {"error":{...}}` (no named `event:`; the SDK raises APIError
// from a data payload that has an `error` key), followed by `[DONE]`.
// Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
// JSON.stringify never emits a raw CR or LF, so one `data:` line always carries one whole payload.

export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // nginx and similar proxies buffer responses unless told not to; a buffered stream is no stream.
  'x-accel-buffering': 'no',
});

export const SSE_DONE = 'data: [DONE]\n\n';

/** One `data:` event carrying `payload` as JSON. */
export function sseData(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/** A comment line: ignored by clients, keeps idle connections and proxies from timing out. */
export function sseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

/** The minimal sink an SseWriter writes to (http.ServerResponse, or a PassThrough in tests). */
export interface SseSink {
  write(chunk: string): boolean;
  end(): unknown;
  once(event: 'drain' | 'close', fn: () => void): unknown;
  removeListener(event: 'drain' | 'close', fn: () => void): unknown;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/**
 * Writes events to a sink with backpressure (waits for 'drain' when the socket buffer is full, so a
 * slow reader slows generation instead of growing memory), and guarantees the stream ends with
 * exactly one `[DONE]`, whether it ends normally or with an error.
 */
export class SseWriter {
  private readonly sink: SseSink;
  private finished = false;

  constructor(sink: SseSink) {
    this.sink = sink;
  }

  /** False once the client is gone or the stream was ended; further writes are dropped. */
  get open(): boolean {
    return !this.finished && !this.sink.writableEnded && !this.sink.destroyed;
  }

  /** Sends one event; resolves when the sink can take more. */
  async send(payload: unknown): Promise<void> {
    await this.raw(sseData(payload));
  }

  async comment(text: string): Promise<void> {
    await this.raw(sseComment(text));
  }

  /** Ends the stream: `[DONE]` then end. Idempotent. */
  done(): void {
    if (!this.open) {
      this.finished = true;
      return;
    }
    this.finished = true;
    this.sink.write(SSE_DONE);
    this.sink.end();
  }

  /** Ends the stream with an error event in OpenAI's shape, then `[DONE]`. */
  fail(body: OpenAIErrorBody): void {
    if (this.open) this.sink.write(sseData(body));
    this.done();
  }

  private async raw(text: string): Promise<void> {
    if (!this.open) return;
    if (this.sink.write(text)) return;
    await new Promise<void>((resolve) => {
      const settle = (): void => {
        this.sink.removeListener('drain', settle);
        this.sink.removeListener('close', settle);
        resolve();
      };
      this.sink.once('drain', settle);
      this.sink.once('close', settle);
    });
  }
}
