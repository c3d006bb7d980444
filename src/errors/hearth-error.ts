import { ERRORS, type ErrorCode } from './catalogue.ts';

/** The one error class hearth throws for anything a user or operator should read. */
export class HearthError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly openaiCode: string | null;
  /** The request field at fault (OpenAI `param`), when known. */
  readonly param: string | null;

  constructor(code: ErrorCode, args: readonly (string | number)[] = [], opts: { param?: string; cause?: unknown } = {}) {
    const def = ERRORS[code];
    super(def.message.replace(/\{(\d+)\}/g, (_, i: string) => String(args[Number(i)] ?? '')), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HearthError';
    this.code = code;
    this.status = def.status;
    this.type = def.type;
    this.openaiCode = def.openaiCode;
    this.param = opts.param ?? null;
  }
}

export function isHearthError(e: unknown, code?: ErrorCode): e is HearthError {
  return e instanceof HearthError && (code === undefined || e.code === code);
}
