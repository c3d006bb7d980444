// Reads one `{"name": ..., "arguments": {...}}` object as it streams in. The arguments value is
// passed on as it arrives, re-spelled compactly (whitespace outside strings dropped, everything
// else verbatim), so the streamed fragments and the final arguments string are the same bytes.

import { JsonScanner } from './json-scanner.ts';

const isWs = (c: string): boolean => c === ' ' || c === '\n' || c === '\r' || c === '\t';

export type ReadResult = 'more' | 'done' | 'error';

export interface CallReaderOptions {
  /** Keys that hold the arguments ("arguments"; Llama also says "parameters"). */
  readonly argKeys: readonly string[];
  /** When set, a call naming another function is malformed (stays content). */
  readonly allowedNames?: ReadonlySet<string> | undefined;
  /** The call only counts once an arguments key was seen (Llama: a bare JSON answer is content). */
  readonly requireArgs?: boolean;
}

export class CallReader {
  /** Everything fed so far, for putting a malformed call back into content. */
  raw = '';
  name: string | null = null;
  /** Compact arguments text read so far. */
  args = '';
  private argsSeen = false;
  private argsFinished = false;
  private argsIsString = false;
  private argsStart = -1;
  private argsEnd = -1;
  private curKey: string | null = null;
  private valStart = -1;
  private badName = false;
  private readonly scanner: JsonScanner;

  constructor(private readonly opts: CallReaderOptions) {
    this.scanner = new JsonScanner({
      keyEnd: (depth, s, e) => {
        if (depth === 1) this.curKey = JSON.parse(this.raw.slice(s, e)) as string;
      },
      valueStart: (depth, off) => {
        if (depth === 0 && this.raw[off] !== '{') this.badName = true; // not an object: not a call
        if (depth !== 1) return;
        this.valStart = off;
        if (this.curKey !== null && this.opts.argKeys.includes(this.curKey) && !this.argsSeen) {
          this.argsSeen = true;
          this.argsStart = off;
          this.argsIsString = this.raw[off] === '"';
        }
      },
      valueEnd: (depth, end) => {
        if (depth !== 1) return;
        const text = this.raw.slice(this.valStart, end);
        if (this.curKey === 'name' && this.name === null) {
          const v: unknown = JSON.parse(text);
          if (typeof v !== 'string' || (this.opts.allowedNames && !this.opts.allowedNames.has(v))) this.badName = true;
          else this.name = v;
        } else if (this.argsSeen && !this.argsFinished && this.valStart === this.argsStart) {
          this.argsEnd = end;
          this.argsFinished = true;
          if (this.argsIsString) this.args = compactStringArgs(JSON.parse(text) as string);
        }
      },
    });
  }

  /** Whether the call is known well enough to announce (name, and arguments started or done). */
  get ready(): boolean {
    if (this.name === null || this.badName) return false;
    if (this.opts.requireArgs === true) return this.argsSeen;
    return this.argsSeen || this.scanner.complete;
  }

  /** True when arguments arrive as a JSON-encoded string: those are passed on whole, at the end. */
  get argsAreString(): boolean { return this.argsIsString; }

  push(c: string): ReadResult {
    const off = this.raw.length;
    const wasInString = this.scanner.inString;
    this.raw += c;
    if (!this.scanner.push(c) || this.badName) return 'error';
    if (this.argsSeen && !this.argsIsString && off >= this.argsStart && (this.argsEnd === -1 || off < this.argsEnd)) {
      if (wasInString || !isWs(c)) this.args += c;
    }
    if (this.scanner.complete) {
      if (this.name === null || (this.opts.requireArgs === true && !this.argsSeen)) return 'error';
      if (!this.argsSeen) this.args = '{}';
      return 'done';
    }
    return 'more';
  }
}

/** Some models send arguments as a JSON string; OpenAI's field is that string, so unwrap it. */
function compactStringArgs(s: string): string {
  try {
    return JSON.stringify(JSON.parse(s));
  } catch {
    return s;
  }
}
