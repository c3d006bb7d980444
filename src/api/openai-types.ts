// The request bodies as the OpenAPI document's schemas guarantee them after validation (only the
// fields hearth reads; unknown ones are ignored). Kept next to openapi.yaml's names on purpose.

export interface ContentPartBody {
  readonly type: string;
  readonly text?: string;
  readonly refusal?: string;
}

export interface ToolCallBody {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

export interface ChatMessageBody {
  readonly role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  readonly content?: string | null | readonly ContentPartBody[];
  readonly name?: string;
  readonly tool_calls?: readonly ToolCallBody[] | null;
  readonly tool_call_id?: string;
}

export interface ToolBody {
  readonly type: 'function';
  readonly function: { readonly name: string; readonly description?: string; readonly parameters?: Record<string, unknown>; readonly strict?: boolean | null };
}

export type ToolChoiceBody = 'none' | 'auto' | 'required' | { readonly type: 'function'; readonly function: { readonly name: string } };

export type ResponseFormatBody =
  | { readonly type: 'text' | 'json_object' }
  | { readonly type: 'json_schema'; readonly json_schema: { readonly name: string; readonly description?: string; readonly schema?: Record<string, unknown>; readonly strict?: boolean | null } };

/** Sampling fields shared by chat and legacy completions. */
export interface SamplingBody {
  readonly model: string;
  readonly max_tokens?: number | null;
  readonly temperature?: number | null;
  readonly top_p?: number | null;
  readonly n?: number | null;
  readonly stop?: string | readonly string[] | null;
  readonly seed?: number | null;
  readonly presence_penalty?: number | null;
  readonly frequency_penalty?: number | null;
  readonly logit_bias?: Readonly<Record<string, number>> | null;
  readonly user?: string;
  readonly stream?: boolean | null;
  readonly stream_options?: { readonly include_usage?: boolean } | null;
  readonly top_k?: number | null;
  readonly min_p?: number | null;
  readonly repetition_penalty?: number | null;
}

export interface ChatRequestBody extends SamplingBody {
  readonly messages: readonly ChatMessageBody[];
  readonly max_completion_tokens?: number | null;
  readonly logprobs?: boolean | null;
  readonly top_logprobs?: number | null;
  readonly tools?: readonly ToolBody[];
  readonly tool_choice?: ToolChoiceBody;
  readonly parallel_tool_calls?: boolean | null;
  readonly response_format?: ResponseFormatBody;
  /** vLLM's extension: extra variables for the chat template (e.g. {"enable_thinking": false}). */
  readonly chat_template_kwargs?: Readonly<Record<string, unknown>> | null;
}

export interface CompletionRequestBody extends SamplingBody {
  readonly prompt: string | readonly string[] | readonly number[] | readonly (readonly number[])[];
  readonly best_of?: number | null;
  readonly logprobs?: number | null;
  readonly echo?: boolean | null;
  readonly suffix?: string | null;
}
