import type { ChoiceEvent } from './choice-runner.ts';
import type { McpOutputItem } from './responses-mcp-items.ts';
import { completionId } from './route-support.ts';

// Folds one choice's events into the Responses API's output items, and says which typed stream
// events each step makes (https://platform.openai.com/docs/api-reference/responses-streaming).
// The non-streaming route keeps only the items; the streaming one also sends the events, so both
// give the same output by construction. Order per item, as OpenAI sends it and as openai-node's
// ResponseStream accumulator checks it:
//   output_item.added → content_part.added → output_text.delta… → output_text.done →
//   content_part.done → output_item.done            (message; reasoning_text likewise)
//   output_item.added → function_call_arguments.delta… → function_call_arguments.done →
//   output_item.done                                (function_call)
// Pure: events in, items and events out; no sockets.

export interface OutputText {
  type: 'output_text';
  text: string;
  annotations: unknown[];
  logprobs: unknown[];
}
export interface MessageItem {
  type: 'message';
  id: string;
  status: 'in_progress' | 'completed' | 'incomplete';
  role: 'assistant';
  content: OutputText[];
}
export interface ReasoningItem {
  type: 'reasoning';
  id: string;
  summary: unknown[];
  content: { type: 'reasoning_text'; text: string }[];
}
export interface FunctionCallItem {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  /** The namespace tool the function belongs to (name is then its name inside it). */
  namespace?: string;
  arguments: string;
  status: 'in_progress' | 'completed' | 'incomplete';
}
/** Hosted MCP items are built by responses-mcp-run.ts and added with append(). */
export type OutputItem = MessageItem | ReasoningItem | FunctionCallItem | McpOutputItem;

/** A stream event before the writer numbers it (sequence_number). */
export interface ResponseStreamEvent {
  readonly type: string;
  readonly [k: string]: unknown;
}

const clone = <T>(x: T): T => structuredClone(x);

export class ResponseOutputBuilder {
  readonly output: OutputItem[] = [];
  private open: { readonly kind: 'message' | 'reasoning'; readonly index: number } | null = null;
  /** Tool-call index (the parser's) → output index. */
  private readonly calls = new Map<number, number>();

  /** `namespaced`: model-facing name → namespace and name (responses-tools.ts). */
  constructor(private readonly namespaced: ReadonlyMap<string, { readonly namespace: string; readonly name: string }> = new Map()) {}

  /** The events `ev` makes; the items are updated in place. */
  push(ev: ChoiceEvent): ResponseStreamEvent[] {
    const out: ResponseStreamEvent[] = [];
    switch (ev.type) {
      case 'content':
      case 'reasoning': {
        const kind = ev.type === 'content' ? 'message' : 'reasoning';
        if (this.open?.kind !== kind) {
          this.closeOpen(out, 'completed');
          this.openText(out, kind);
        }
        const index = this.open!.index;
        const item = this.output[index] as MessageItem | ReasoningItem;
        item.content[0]!.text += ev.text;
        out.push({ type: kind === 'message' ? 'response.output_text.delta' : 'response.reasoning_text.delta', item_id: item.id, output_index: index, content_index: 0, delta: ev.text, ...(kind === 'message' ? { logprobs: [] } : {}) });
        break;
      }
      case 'tool_call_start': {
        this.closeOpen(out, 'completed');
        // A namespaced function is reported as OpenAI does: its own name plus its namespace.
        const q = this.namespaced.get(ev.name);
        const item: FunctionCallItem = { type: 'function_call', id: completionId('fc').replace('-', '_'), call_id: ev.id, name: q?.name ?? ev.name, ...(q === undefined ? {} : { namespace: q.namespace }), arguments: '', status: 'in_progress' };
        this.output.push(item);
        this.calls.set(ev.index, this.output.length - 1);
        out.push({ type: 'response.output_item.added', output_index: this.output.length - 1, item: clone(item) });
        break;
      }
      case 'tool_call_args': {
        const index = this.calls.get(ev.index)!;
        const item = this.output[index] as FunctionCallItem;
        item.arguments += ev.fragment;
        out.push({ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: index, delta: ev.fragment });
        break;
      }
      case 'tool_call_end': {
        const index = this.calls.get(ev.index)!;
        this.closeCall(out, index, 'completed');
        break;
      }
      case 'finish':
        break;
    }
    return out;
  }

  /**
   * End of output: open items are closed (incomplete when the budget ran out). A response with no
   * item at all still gets an empty message, so clients always find the assistant's turn.
   */
  finish(truncated: boolean): ResponseStreamEvent[] {
    const out: ResponseStreamEvent[] = [];
    const status = truncated ? 'incomplete' : 'completed';
    this.closeOpen(out, status);
    for (const index of this.calls.values()) if ((this.output[index] as FunctionCallItem).status === 'in_progress') this.closeCall(out, index, status);
    if (!this.output.some((o) => o.type === 'message' || o.type === 'function_call' || o.type === 'mcp_approval_request')) {
      this.openText(out, 'message');
      this.closeOpen(out, status);
    }
    return out;
  }

  /** Adds an item built elsewhere (hosted MCP items), closing open text first; returns its index. */
  append(item: OutputItem, out: ResponseStreamEvent[]): number {
    this.closeOpen(out, 'completed');
    this.output.push(item);
    return this.output.length - 1;
  }

  private openText(out: ResponseStreamEvent[], kind: 'message' | 'reasoning'): void {
    const part = kind === 'message' ? { type: 'output_text' as const, text: '', annotations: [], logprobs: [] } : { type: 'reasoning_text' as const, text: '' };
    const item: OutputItem =
      kind === 'message'
        ? { type: 'message', id: completionId('msg').replace('-', '_'), status: 'in_progress', role: 'assistant', content: [] }
        : { type: 'reasoning', id: completionId('rs').replace('-', '_'), summary: [], content: [] };
    this.output.push(item);
    const index = this.output.length - 1;
    this.open = { kind, index };
    out.push({ type: 'response.output_item.added', output_index: index, item: clone(item) });
    (item.content as unknown[]).push(part);
    out.push({ type: 'response.content_part.added', item_id: item.id, output_index: index, content_index: 0, part: clone(part) });
  }

  private closeOpen(out: ResponseStreamEvent[], status: 'completed' | 'incomplete'): void {
    if (this.open === null) return;
    const { kind, index } = this.open;
    this.open = null;
    const item = this.output[index] as MessageItem | ReasoningItem;
    const part = item.content[0]!;
    if (kind === 'message') {
      out.push({ type: 'response.output_text.done', item_id: item.id, output_index: index, content_index: 0, text: part.text, logprobs: [] });
      (item as MessageItem).status = status;
    } else {
      out.push({ type: 'response.reasoning_text.done', item_id: item.id, output_index: index, content_index: 0, text: part.text });
    }
    out.push({ type: 'response.content_part.done', item_id: item.id, output_index: index, content_index: 0, part: clone(part) });
    out.push({ type: 'response.output_item.done', output_index: index, item: clone(item) });
  }

  private closeCall(out: ResponseStreamEvent[], index: number, status: 'completed' | 'incomplete'): void {
    const item = this.output[index] as FunctionCallItem;
    if (item.status !== 'in_progress') return;
    item.status = status;
    out.push({ type: 'response.function_call_arguments.done', item_id: item.id, output_index: index, name: item.name, arguments: item.arguments });
    out.push({ type: 'response.output_item.done', output_index: index, item: clone(item) });
  }
}
