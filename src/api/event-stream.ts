import type { FastifyReply, FastifyRequest } from 'fastify';
import { SSE_HEADERS, type SseSink } from './sse.ts';

// Server-sent events with a named `event:` line per event, as the Responses API
// (`event: response.output_text.delta`) and Anthropic's Messages API (`event: content_block_delta`)
// stream them. Unlike chat completions neither ends with `data: [DONE]`: the last typed event
// (response.completed / message_stop) is the end. Same backpressure as SseWriter: a slow reader
// slows generation instead of growing memory.

export function namedEvent(name: string, payload: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(payload)}\n\n`;
}

export class NamedEventWriter {
  private finished = false;

  constructor(private readonly sink: SseSink) {}

  get open(): boolean {
    return !this.finished && !this.sink.writableEnded && !this.sink.destroyed;
  }

  async send(name: string, payload: unknown): Promise<void> {
    if (!this.open) return;
    if (this.sink.write(namedEvent(name, payload))) return;
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

  /** Ends the stream (idempotent). */
  end(): void {
    const wasOpen = this.open;
    this.finished = true;
    if (wasOpen) this.sink.end();
  }
}

/** Takes the socket from fastify and starts a named-event stream. */
export function openNamedStream(reply: FastifyReply, req: FastifyRequest): NamedEventWriter {
  reply.hijack();
  reply.raw.writeHead(200, { ...SSE_HEADERS, 'x-request-id': String(req.id) });
  reply.raw.socket?.setNoDelay(true);
  return new NamedEventWriter(reply.raw);
}
