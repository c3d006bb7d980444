/** A loaded tokenizer.json (through a maintained library, never a hand-written BPE). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  /** From tokenizer_config/generation_config/config: every id that ends generation. */
  readonly eosTokenIds: readonly number[];
  /** Ids of special/added tokens (not emitted as text). */
  readonly specialIds: ReadonlySet<number>;
  /** Encodes text; addSpecialTokens (default false) adds BOS etc. per the post-processor. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The raw bytes a token stands for in output text (byte-level BPE / byte fallback resolved). */
  tokenBytes(id: number): Uint8Array;
  /** Id of a token spelled exactly so (e.g. "<tool_call>"), if it is one token. */
  idOf(piece: string): number | undefined;
  /**
   * A fresh incremental decoder for one sequence. skipSpecialTokens defaults to false (as decode()).
   * continuation: the ids follow earlier text (a prompt), so a SentencePiece decoder keeps the leading
   * space it would strip at the start of a whole text.
   */
  createDecoder(opts?: { skipSpecialTokens?: boolean; continuation?: boolean }): IncrementalDecoder;
}

/** Turns a token stream into text deltas, never emitting half a UTF-8 character. */
export interface IncrementalDecoder {
  /** Returns the new text this token completes ("" when it ends mid-character). */
  push(id: number): string;
  /** Whatever is still held back (invalid trailing bytes become U+FFFD). */
  flush(): string;
}

export interface ChatMessage {
  readonly role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  readonly content: string | null;
  readonly name?: string;
  readonly tool_calls?: readonly { readonly id: string; readonly type: 'function'; readonly function: { readonly name: string; readonly arguments: string } }[];
  readonly tool_call_id?: string;
}

export interface ToolDef {
  readonly type: 'function';
  readonly function: { readonly name: string; readonly description?: string; readonly parameters?: Record<string, unknown>; readonly strict?: boolean };
}

/** chat_template from tokenizer_config.json rendered with @huggingface/jinja. */
export interface ChatTemplate {
  /** vars: extra template variables (e.g. { enable_thinking: false } for Qwen3). */
  render(messages: readonly ChatMessage[], opts: { tools?: readonly ToolDef[]; addGenerationPrompt: boolean; vars?: Readonly<Record<string, unknown>> }): string;
}
