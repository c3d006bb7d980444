// Anthropic's Messages API request as openapi.yaml's CreateMessageRequest guarantees it after
// validation (only the fields hearth reads). https://docs.anthropic.com/en/api/messages

export interface AnthropicTextBlock {
  readonly type: 'text';
  readonly text: string;
}
export interface AnthropicToolUseBlock {
  readonly type: 'tool_use';
  readonly id: string;
  readonly name: string;
  readonly input: unknown;
}
export interface AnthropicToolResultBlock {
  readonly type: 'tool_result';
  readonly tool_use_id: string;
  readonly content?: string | readonly { readonly type: string; readonly text?: string }[];
  readonly is_error?: boolean;
}
export type AnthropicBlock = AnthropicTextBlock | AnthropicToolUseBlock | AnthropicToolResultBlock | { readonly type: string };

export interface AnthropicMessage {
  /** user, assistant or system; the schema lets any string through so the 400 for another role
   *  is Anthropic's own wording ("Unexpected role"), which Claude Code's fallbacks key on. */
  readonly role: string;
  readonly content: string | readonly AnthropicBlock[];
}

export interface AnthropicTool {
  readonly type?: string;
  readonly name: string;
  readonly description?: string;
  readonly input_schema?: Record<string, unknown>;
}

export interface AnthropicToolChoice {
  readonly type: 'auto' | 'any' | 'tool' | 'none';
  readonly name?: string;
  readonly disable_parallel_tool_use?: boolean;
}

export interface CreateMessageBody {
  readonly model: string;
  readonly messages: readonly AnthropicMessage[];
  readonly system?: string | readonly AnthropicTextBlock[];
  readonly max_tokens?: number;
  readonly stop_sequences?: readonly string[];
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  readonly stream?: boolean;
  readonly tools?: readonly AnthropicTool[];
  readonly tool_choice?: AnthropicToolChoice;
  readonly thinking?: AnthropicThinking;
  readonly metadata?: { readonly user_id?: string | null };
}

/** `enabled` + budget_tokens, `adaptive` (the model decides), `disabled`; display `omitted` hides the text. */
export interface AnthropicThinking {
  readonly type: string;
  readonly budget_tokens?: number;
  readonly display?: string;
}
