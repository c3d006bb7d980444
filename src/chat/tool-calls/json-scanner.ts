// An incremental JSON syntax checker fed one UTF-16 code unit at a time. It does not build
// values: it reports where keys and values start and end (offsets into the text pushed so far),
// so the tool-call reader can slice out "name" and stream "arguments" without buffering the
// whole call. RFC 8259 grammar; numbers are checked when they end.

const S = {
  VALUE: 0, OBJ_FIRST: 1, OBJ_KEY: 2, COLON: 3, AFTER: 4, ARR_FIRST: 5,
  STR: 6, STR_ESC: 7, STR_U: 8, NUM: 9, LIT: 10, DONE: 11, ERR: 12,
} as const;
type State = (typeof S)[keyof typeof S];

const NUMBER_RE = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const NUM_CHARS = /[0-9+\-.eE]/;
const HEX = /[0-9a-fA-F]/;

export interface ScanHooks {
  /** A key string ended: raw text (with quotes) is [start, end) of the pushed text. */
  keyEnd(depth: number, start: number, end: number): void;
  /** A value begins at offset; depth 0 = the top value, 1 = members of the top container. */
  valueStart(depth: number, offset: number): void;
  /** A value ended; end is exclusive (a number ends before the character that ended it). */
  valueEnd(depth: number, end: number): void;
}

const isWs = (c: string): boolean => c === ' ' || c === '\n' || c === '\r' || c === '\t';

export class JsonScanner {
  private state: State = S.VALUE;
  private readonly stack: ('o' | 'a')[] = [];
  private isKey = false;
  private keyStart = 0;
  private uCount = 0;
  private num = '';
  private lit = '';
  private offset = 0;

  constructor(private readonly hooks: ScanHooks) {}

  /** Inside a string literal (so whitespace there is significant). */
  get inString(): boolean {
    return this.state === S.STR || this.state === S.STR_ESC || this.state === S.STR_U;
  }
  get complete(): boolean { return this.state === S.DONE; }
  get failed(): boolean { return this.state === S.ERR; }

  /** Feeds one code unit; false when the text is not JSON any more (the scanner stays failed). */
  push(c: string): boolean {
    const off = this.offset++;
    for (;;) {
      switch (this.state) {
        case S.VALUE:
          if (isWs(c)) return true;
          return this.beginValue(c, off);
        case S.OBJ_FIRST:
        case S.OBJ_KEY:
          if (isWs(c)) return true;
          if (c === '"') { this.isKey = true; this.keyStart = off; this.state = S.STR; return true; }
          if (c === '}' && this.state === S.OBJ_FIRST) return this.close(off);
          return this.fail();
        case S.COLON:
          if (isWs(c)) return true;
          if (c === ':') { this.state = S.VALUE; return true; }
          return this.fail();
        case S.AFTER: {
          if (isWs(c)) return true;
          const top = this.stack[this.stack.length - 1];
          if (c === ',') { this.state = top === 'o' ? S.OBJ_KEY : S.VALUE; return true; }
          if ((c === '}' && top === 'o') || (c === ']' && top === 'a')) return this.close(off);
          return this.fail();
        }
        case S.ARR_FIRST:
          if (isWs(c)) return true;
          if (c === ']') return this.close(off);
          this.state = S.VALUE;
          continue;
        case S.STR:
          if (c === '"') {
            if (this.isKey) { this.hooks.keyEnd(this.stack.length, this.keyStart, off + 1); this.state = S.COLON; }
            else this.endValue(off + 1);
            return true;
          }
          if (c === '\\') { this.state = S.STR_ESC; return true; }
          if (c < ' ') return this.fail();
          return true;
        case S.STR_ESC:
          if ('"\\/bfnrt'.includes(c)) { this.state = S.STR; return true; }
          if (c === 'u') { this.state = S.STR_U; this.uCount = 0; return true; }
          return this.fail();
        case S.STR_U:
          if (!HEX.test(c)) return this.fail();
          if (++this.uCount === 4) this.state = S.STR;
          return true;
        case S.NUM:
          if (NUM_CHARS.test(c)) { this.num += c; return true; }
          if (!NUMBER_RE.test(this.num)) return this.fail();
          this.endValue(off);
          continue; // the character that ended the number belongs to the container
        case S.LIT:
          if (c !== this.lit[0]) return this.fail();
          this.lit = this.lit.slice(1);
          if (this.lit === '') this.endValue(off + 1);
          return true;
        case S.DONE:
          return isWs(c) ? true : this.fail();
        default:
          return false;
      }
    }
  }

  /** End of input: a top-level number completes here. */
  end(): boolean {
    if (this.state === S.NUM && this.stack.length === 0 && NUMBER_RE.test(this.num)) this.endValue(this.offset);
    return this.state === S.DONE;
  }

  private beginValue(c: string, off: number): boolean {
    const depth = this.stack.length;
    if (c === '{' || c === '[') {
      this.hooks.valueStart(depth, off);
      this.stack.push(c === '{' ? 'o' : 'a');
      this.state = c === '{' ? S.OBJ_FIRST : S.ARR_FIRST;
      return true;
    }
    if (c === '"') { this.hooks.valueStart(depth, off); this.isKey = false; this.state = S.STR; return true; }
    if (c === '-' || (c >= '0' && c <= '9')) { this.hooks.valueStart(depth, off); this.num = c; this.state = S.NUM; return true; }
    const lit = c === 't' ? 'rue' : c === 'f' ? 'alse' : c === 'n' ? 'ull' : null;
    if (lit === null) return this.fail();
    this.hooks.valueStart(depth, off);
    this.lit = lit;
    this.state = S.LIT;
    return true;
  }

  private close(off: number): boolean {
    this.stack.pop();
    this.endValue(off + 1);
    return true;
  }

  private endValue(end: number): void {
    this.hooks.valueEnd(this.stack.length, end);
    this.state = this.stack.length === 0 ? S.DONE : S.AFTER;
  }

  private fail(): false {
    this.state = S.ERR;
    return false;
  }
}
