import type { ContentPartBody } from './openai-types.ts';

// The Responses API request as openapi.yaml's CreateResponseRequest guarantees it after validation
// (only the fields hearth reads). https://platform.openai.com/docs/api-reference/responses/create

export interface ResponseMessageItem {
  readonly type?: 'message';
  readonly role: 'user' | 'system' | 'developer' | 'assistant';
  readonly content: string | readonly ContentPartBody[];
  readonly id?: string;
}

export interface ResponseFunctionCallItem {
  readonly type: 'function_call';
  readonly call_id: string;
  readonly name: string;
  /** Set when the function belongs to a `namespace` tool (as Codex sends its calls back). */
  readonly namespace?: string | null;
  readonly arguments: string;
  readonly id?: string;
}

export interface ResponseFunctionCallOutputItem {
  readonly type: 'function_call_output';
  readonly call_id: string;
  readonly output: string | readonly ContentPartBody[];
}

/** Reasoning items a client sends back are accepted and dropped (the template re-renders turns). */
export interface ResponseOtherItem {
  readonly type: string;
}

export type ResponseInputItem = ResponseMessageItem | ResponseFunctionCallItem | ResponseFunctionCallOutputItem | ResponseOtherItem;

export interface ResponseFunctionTool {
  readonly type: 'function';
  readonly name: string;
  readonly description?: string | null;
  readonly parameters?: Record<string, unknown> | null;
  readonly strict?: boolean | null;
}

/** A group of the client's own function tools (Codex CLI's multi_agent_v1, MCP servers). */
export interface ResponseNamespaceTool {
  readonly type: 'namespace';
  readonly name: string;
  readonly description?: string | null;
  readonly tools: readonly { readonly type: string }[];
}

export type ResponseToolChoice = 'none' | 'auto' | 'required' | { readonly type: string; readonly name?: string; readonly namespace?: string };

export type ResponseTextFormat =
  | { readonly type: 'text' | 'json_object' }
  | { readonly type: 'json_schema'; readonly name: string; readonly schema: Record<string, unknown>; readonly description?: string; readonly strict?: boolean | null };

export interface CreateResponseBody {
  readonly model: string;
  readonly input?: string | readonly ResponseInputItem[];
  readonly instructions?: string | null;
  readonly tools?: readonly { readonly type: string }[];
  readonly tool_choice?: ResponseToolChoice;
  readonly parallel_tool_calls?: boolean | null;
  readonly text?: { readonly format?: ResponseTextFormat } | null;
  readonly max_output_tokens?: number | null;
  readonly temperature?: number | null;
  readonly top_p?: number | null;
  readonly seed?: number | null;
  readonly reasoning?: { readonly effort?: string | null; readonly summary?: string | null } | null;
  /** Extra output to include; hearth fills none of OpenAI's values (reasoning.encrypted_content:
   *  its reasoning is plain text in the item; logprobs; hosted tools' results) and ignores them. */
  readonly include?: readonly string[] | null;
  /** OpenAI's cache routing hint. hearth's prefix cache matches by tokens whatever the key. */
  readonly prompt_cache_key?: string | null;
  readonly stream?: boolean | null;
  readonly store?: boolean | null;
  readonly previous_response_id?: string | null;
  readonly metadata?: Readonly<Record<string, string>> | null;
  readonly user?: string;
}
