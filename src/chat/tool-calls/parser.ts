// Streaming tool-call parser: model text deltas in, OpenAI-shaped events out. Pure (no I/O), so
// the API layer feeds it from the incremental detokenizer and the non-streaming path reuses it.
// Markup that belongs to a call never reaches content; a call that turns out malformed before it
// was announced goes back to content verbatim (tool_choice auto must never lose text).

import { CallReader } from './call-reader.ts';
import { randomIdSeed, toolCallId } from './call-ids.ts';
import type { ToolSyntax } from './syntax.ts';

export type ToolCallEvent =
  | { readonly type: 'content'; readonly text: string }
  | { readonly type: 'tool_call_start'; readonly index: number; readonly id: string; readonly name: string }
  | { readonly type: 'tool_call_args'; readonly index: number; readonly fragment: string }
  | { readonly type: 'tool_call_end'; readonly index: number };

export interface ToolCallParserOptions {
  /** Seeds call ids (`call_<24 alnum>`); the same seed names calls identically. Random when absent. */
  readonly seed?: number;
  /** Function names the request offered; a call to any other name stays content. */
  readonly toolNames?: readonly string[];
}

export interface ToolCallParser {
  push(textDelta: string): ToolCallEvent[];
  end(): ToolCallEvent[];
}

const HERMES_OPEN = '<tool_call>';
const HERMES_CLOSE = '</tool_call>';
const MISTRAL_OPEN = '[TOOL_CALLS]';
const PYTHON_TAG = '<|python_tag|>';

const isWs = (c: string): boolean => c === ' ' || c === '\n' || c === '\r' || c === '\t';

/** Length of the longest suffix of s that is a proper prefix of marker (text to hold back). */
function heldSuffix(s: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, s.length); n > 0; n--) {
    if (marker.startsWith(s.slice(s.length - n))) return n;
  }
  return 0;
}

type Mode =
  | 'start' // Llama only: nothing but whitespace seen yet
  | 'content'
  | 'body' // inside a call object
  | 'after-body' // Hermes: expecting </tool_call>; Llama: `;` or the end
  | 'array-open' // Mistral: after [TOOL_CALLS], expecting [ or {
  | 'array-sep'; // Mistral: after a call in the array, expecting , or ]

class Parser implements ToolCallParser {
  private mode: Mode;
  private buf = '';
  private pendingWs = '';
  private out: ToolCallEvent[] = [];
  private reader: CallReader | null = null;
  private prefix = ''; // markup consumed before the current reader, for restoring malformed calls
  private committed = false;
  private argsSent = 0;
  private index = 0;
  private inArray = false;
  private readonly seed: number;
  private readonly names: ReadonlySet<string> | undefined;
  private readonly trigger: string;

  constructor(private readonly syntax: ToolSyntax, opts: ToolCallParserOptions) {
    this.seed = opts.seed ?? randomIdSeed();
    this.names = opts.toolNames ? new Set(opts.toolNames) : undefined;
    this.trigger = syntax === 'hermes' ? HERMES_OPEN : syntax === 'mistral' ? MISTRAL_OPEN : PYTHON_TAG;
    this.mode = syntax === 'llama3_json' ? 'start' : 'content';
  }

  push(delta: string): ToolCallEvent[] {
    this.buf += delta;
    this.run(false);
    return this.take();
  }

  end(): ToolCallEvent[] {
    this.run(true);
    if (this.mode === 'body' && this.reader) {
      if (this.committed) this.finishCall();
      else this.restore(this.reader.raw);
    }
    if (this.buf !== '') { this.emitContent(this.buf); this.buf = ''; }
    // Whitespace after the last call is the template's separator, not an answer.
    if (this.pendingWs !== '' && this.index === 0) this.out.push({ type: 'content', text: this.pendingWs });
    this.pendingWs = '';
    return this.take();
  }

  private take(): ToolCallEvent[] {
    const o = this.out;
    this.out = [];
    return o;
  }

  /** Consumes as much of buf as can be decided now; `final` = no more text will come. */
  private run(final: boolean): void {
    for (;;) {
      const before = this.buf.length + this.mode;
      switch (this.mode) {
        case 'start': this.stepStart(final); break;
        case 'content': this.stepContent(final); break;
        case 'body': this.stepBody(); break;
        case 'after-body': this.stepAfterBody(final); break;
        case 'array-open': this.stepArrayOpen(final); break;
        case 'array-sep': this.stepArraySep(final); break;
      }
      if (this.buf.length + this.mode === before) return;
    }
  }

  private stepStart(final: boolean): void {
    let i = 0;
    while (i < this.buf.length && isWs(this.buf[i]!)) i++;
    const rest = this.buf.slice(i);
    if (rest === '') return;
    if (rest.startsWith(PYTHON_TAG)) { this.buf = rest.slice(PYTHON_TAG.length); this.openCall(PYTHON_TAG); return; }
    if (!final && PYTHON_TAG.startsWith(rest)) return;
    if (rest[0] === '{') { this.buf = this.buf.slice(i); this.openCall(''); return; }
    this.mode = 'content';
  }

  private stepContent(final: boolean): void {
    const at = this.buf.indexOf(this.trigger);
    if (at >= 0) {
      this.emitContent(this.buf.slice(0, at));
      this.buf = this.buf.slice(at + this.trigger.length);
      if (this.syntax === 'mistral') { this.prefix = this.trigger; this.mode = 'array-open'; }
      else this.openCall(this.trigger);
      return;
    }
    const hold = final ? 0 : heldSuffix(this.buf, this.trigger);
    if (this.buf.length > hold) {
      this.emitContent(this.buf.slice(0, this.buf.length - hold));
      this.buf = this.buf.slice(this.buf.length - hold);
    }
  }

  private openCall(markup: string): void {
    this.reader = new CallReader({
      argKeys: this.syntax === 'llama3_json' ? ['parameters', 'arguments'] : ['arguments', 'parameters'],
      allowedNames: this.names,
      requireArgs: this.syntax === 'llama3_json' && markup === '',
    });
    this.prefix += markup;
    this.committed = false;
    this.argsSent = 0;
    this.mode = 'body';
  }

  private stepBody(): void {
    const r = this.reader!;
    let i = 0;
    while (i < this.buf.length) {
      const c = this.buf[i]!;
      const res = r.push(c);
      if (res === 'error') {
        // Re-read the offending character as content: it may open the next call.
        this.buf = this.buf.slice(i);
        if (this.committed) this.finishCall();
        else this.restore(r.raw.slice(0, -1));
        this.inArray = false;
        this.mode = 'content';
        return;
      }
      i++;
      this.maybeAnnounce(r);
      if (res === 'done') {
        this.buf = this.buf.slice(i);
        if (!this.committed) this.announce(r);
        this.finishCall();
        this.mode = this.syntax === 'mistral' ? (this.inArray ? 'array-sep' : 'content') : 'after-body';
        return;
      }
    }
    this.buf = '';
  }

  private maybeAnnounce(r: CallReader): void {
    if (!this.committed && r.ready) this.announce(r);
    if (this.committed && !r.argsAreString && r.args.length > this.argsSent) {
      this.out.push({ type: 'tool_call_args', index: this.index, fragment: r.args.slice(this.argsSent) });
      this.argsSent = r.args.length;
    }
  }

  private announce(r: CallReader): void {
    this.committed = true;
    this.pendingWs = '';
    this.prefix = '';
    this.out.push({ type: 'tool_call_start', index: this.index, id: toolCallId(this.seed, this.index), name: r.name ?? '' });
  }

  private finishCall(): void {
    const r = this.reader!;
    if (r.args.length > this.argsSent) {
      this.out.push({ type: 'tool_call_args', index: this.index, fragment: r.args.slice(this.argsSent) });
    }
    this.out.push({ type: 'tool_call_end', index: this.index });
    this.index++;
    this.reader = null;
    this.committed = false;
    this.argsSent = 0;
  }

  private stepAfterBody(final: boolean): void {
    let i = 0;
    while (i < this.buf.length && isWs(this.buf[i]!)) i++;
    const rest = this.buf.slice(i);
    if (rest === '') { if (final) this.buf = ''; return; }
    if (this.syntax === 'hermes') {
      if (rest.startsWith(HERMES_CLOSE)) { this.buf = rest.slice(HERMES_CLOSE.length); this.mode = 'content'; return; }
      if (!final && HERMES_CLOSE.startsWith(rest)) return;
    } else if (rest[0] === ';') {
      this.buf = rest.slice(1);
      let j = 0;
      while (j < this.buf.length && isWs(this.buf[j]!)) j++;
      this.buf = this.buf.slice(j);
      this.openCall('');
      return;
    }
    this.buf = rest;
    this.mode = 'content';
  }

  private stepArrayOpen(final: boolean): void {
    let i = 0;
    while (i < this.buf.length && isWs(this.buf[i]!)) i++;
    const c = this.buf[i];
    if (c === undefined) { if (final) { this.restore(''); this.buf = ''; this.mode = 'content'; } return; }
    this.buf = this.buf.slice(i);
    if (c === '[') { this.buf = this.buf.slice(1); this.inArray = true; this.openCall('['); return; }
    if (c === '{') { this.inArray = false; this.openCall(''); return; }
    this.restore('');
    this.mode = 'content';
  }

  private stepArraySep(final: boolean): void {
    let i = 0;
    while (i < this.buf.length && isWs(this.buf[i]!)) i++;
    const c = this.buf[i];
    if (c === undefined) { if (final) this.buf = ''; return; }
    if (c === ',') { this.buf = this.buf.slice(i + 1); this.openCall(''); return; }
    this.buf = this.buf.slice(c === ']' ? i + 1 : i);
    this.inArray = false;
    this.mode = 'content';
  }

  /** A malformed call: its text (markup included) is ordinary content after all. */
  private restore(raw: string): void {
    const text = this.prefix + raw;
    this.prefix = '';
    this.reader = null;
    if (text !== '') this.emitContent(text);
  }

  /** Holds whitespace back until real text follows, so separators around calls never leak. */
  private emitContent(text: string): void {
    if (text === '') return;
    let end = text.length;
    while (end > 0 && isWs(text[end - 1]!)) end--;
    if (end === 0) { this.pendingWs += text; return; }
    if (this.mode === 'start') this.mode = 'content';
    this.out.push({ type: 'content', text: this.pendingWs + text.slice(0, end) });
    this.pendingWs = text.slice(end);
  }
}

/** A streaming parser for one response in the given syntax. */
export function createToolCallParser(syntax: ToolSyntax, opts: ToolCallParserOptions = {}): ToolCallParser {
  return new Parser(syntax, opts);
}
