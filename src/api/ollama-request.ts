import { HearthError } from '../errors/index.ts';
import { jsonValueTooDeep, tooDeepError } from './messages.ts';
import type { ChatMessageBody, ChatRequestBody, ResponseFormatBody, ToolBody, ToolCallBody, ToolChoiceBody } from './openai-types.ts';
import type { ServedModel } from './types.ts';

// Ollama's /api/chat and /api/generate bodies → the chat request hearth plans (so Ollama clients
// get the same template, tool parsing and constrained decoding as /v1/chat/completions). Shapes
// follow https://github.com/ollama/ollama/blob/main/docs/api.md: tool calls carry `arguments` as
// an object, tool results name the tool (`tool_name`) rather than a call id, `format` is "json" or
// a JSON schema, sampling lives under `options`. Pure.

export interface OllamaOptions {
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  readonly min_p?: number;
  readonly seed?: number;
  readonly num_predict?: number;
  readonly stop?: readonly string[] | string;
  readonly num_ctx?: number;
  readonly repeat_penalty?: number;
  readonly presence_penalty?: number;
  readonly frequency_penalty?: number;
  readonly [other: string]: unknown;
}

export interface OllamaToolCall {
  readonly id?: string;
  readonly function: { readonly name: string; readonly arguments?: unknown; readonly index?: number };
}

export interface OllamaMessage {
  readonly role: 'system' | 'user' | 'assistant' | 'tool';
  readonly content?: string;
  readonly thinking?: string;
  readonly images?: readonly string[] | null;
  readonly tool_calls?: readonly OllamaToolCall[];
  readonly tool_name?: string;
  readonly tool_call_id?: string;
}

interface OllamaCommon {
  readonly model: string;
  readonly format?: 'json' | '' | null | Record<string, unknown>;
  readonly options?: OllamaOptions;
  readonly stream?: boolean;
  readonly keep_alive?: string | number;
  readonly think?: boolean | 'high' | 'medium' | 'low';
}

export interface OllamaChatBody extends OllamaCommon {
  readonly messages?: readonly OllamaMessage[];
  readonly tools?: readonly ToolBody[];
  /** hearth's extension (Ollama has none: a model there may ignore its tools): OpenAI's
   *  tool_choice, so a client can require or name a call and get one. */
  readonly tool_choice?: ToolChoiceBody;
}

export interface OllamaGenerateBody extends OllamaCommon {
  readonly prompt?: string;
  readonly suffix?: string;
  readonly system?: string;
  readonly images?: readonly string[] | null;
  readonly raw?: boolean;
  readonly template?: string;
  readonly context?: readonly number[];
}

/** Ollama names models NAME:TAG; `:latest` is the tag a bare name means. */
export function ollamaName(model: ServedModel): string {
  return model.id.includes(':') ? model.id : `${model.id}:latest`;
}

/** The served id for an Ollama model name (with or without :latest), or a 404 as Ollama words it. */
export function resolveOllamaModel(name: string, model: ServedModel): string {
  if (name === model.id || name === ollamaName(model)) return model.id;
  throw new HearthError('HEARTH_ERR_MODEL_NOT_FOUND', [name.slice(0, 256), ollamaName(model)], { param: 'model' });
}

function noImages(images: readonly string[] | null | undefined, at: string): void {
  if (images !== undefined && images !== null && images.length > 0) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${at}: this model reads text only (images are not supported).`], { param: at });
  }
}

/** Ollama's tool calls → OpenAI's, with ids made up where Ollama sends none (tool results are
 *  matched to them by tool name, in order). */
export function ollamaMessages(messages: readonly OllamaMessage[]): ChatMessageBody[] {
  const out: ChatMessageBody[] = [];
  const open: { id: string; name: string }[] = [];
  let calls = 0;
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    noImages(m.images, `${at}.images`);
    const content = m.content ?? '';
    if (m.role === 'assistant') {
      const tc: ToolCallBody[] = (m.tool_calls ?? []).map((c, k) => {
        if (jsonValueTooDeep(c.function.arguments)) throw tooDeepError(`${at}.tool_calls[${k}].function.arguments`);
        const args = c.function.arguments;
        const id = c.id ?? `call_${calls++}`;
        open.push({ id, name: c.function.name });
        return { id, type: 'function', function: { name: c.function.name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) } };
      });
      out.push({ role: 'assistant', content: tc.length > 0 && content === '' ? null : content, ...(tc.length > 0 ? { tool_calls: tc } : {}) });
      return;
    }
    if (m.role === 'tool') {
      const k = m.tool_call_id !== undefined ? open.findIndex((c) => c.id === m.tool_call_id)
        : m.tool_name !== undefined ? open.findIndex((c) => c.name === m.tool_name) : 0;
      const call = open[k];
      if (call === undefined) {
        throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`${at}: a tool message must answer an earlier assistant tool call${m.tool_name === undefined ? '' : ` to '${m.tool_name.slice(0, 64)}'`}.`], { param: at });
      }
      open.splice(k, 1);
      out.push({ role: 'tool', content, tool_call_id: call.id });
      return;
    }
    out.push({ role: m.role, content });
  });
  return out;
}

function formatOf(format: OllamaCommon['format']): ResponseFormatBody | undefined {
  if (format === undefined || format === null || format === '') return undefined;
  if (format === 'json') return { type: 'json_object' };
  return { type: 'json_schema', json_schema: { name: 'format', schema: format } };
}

/** The sampling and length fields of `options` (the rest, like num_thread or mirostat, are
 *  accepted and have no effect here: the cluster sets its own threads). */
function optionFields(o: OllamaOptions | undefined, model: ServedModel): Partial<ChatRequestBody> {
  if (o === undefined) return {};
  if (o.num_ctx !== undefined && o.num_ctx > model.contextLength) {
    throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`options.num_ctx ${o.num_ctx} is more than this model serves (${model.contextLength} tokens); ask for at most ${model.contextLength}.`], { param: 'options.num_ctx' });
  }
  const stop = typeof o.stop === 'string' ? [o.stop] : o.stop;
  // num_predict: -1 is "until the context ends", -2 "fill the context": both are no limit here.
  const max = o.num_predict !== undefined && o.num_predict >= 0 ? o.num_predict : undefined;
  if (max === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ['options.num_predict must be positive (or -1 for no limit).'], { param: 'options.num_predict' });
  return {
    ...(o.temperature === undefined ? {} : { temperature: o.temperature }),
    ...(o.top_p === undefined ? {} : { top_p: o.top_p }),
    ...(o.top_k === undefined ? {} : { top_k: o.top_k }),
    ...(o.min_p === undefined ? {} : { min_p: o.min_p }),
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o.repeat_penalty === undefined ? {} : { repetition_penalty: o.repeat_penalty }),
    ...(o.presence_penalty === undefined ? {} : { presence_penalty: o.presence_penalty }),
    ...(o.frequency_penalty === undefined ? {} : { frequency_penalty: o.frequency_penalty }),
    ...(stop === undefined || stop.length === 0 ? {} : { stop }),
    ...(max === undefined ? {} : { max_tokens: max }),
  };
}

function thinkKwargs(think: OllamaCommon['think']): Partial<ChatRequestBody> {
  // The template's own switch (Qwen3's enable_thinking); levels mean "think".
  if (think === undefined) return {};
  return { chat_template_kwargs: { enable_thinking: think !== false } };
}

export function translateOllamaChat(body: OllamaChatBody, model: ServedModel): ChatRequestBody {
  resolveOllamaModel(body.model, model);
  const messages = ollamaMessages(body.messages ?? []);
  if (messages.length === 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["'messages' must hold at least one message."], { param: 'messages' });
  const format = formatOf(body.format);
  return {
    model: model.id,
    messages,
    ...(body.tools === undefined || body.tools.length === 0 ? {} : { tools: body.tools }),
    ...(body.tool_choice === undefined ? {} : { tool_choice: body.tool_choice }),
    ...(format === undefined ? {} : { response_format: format }),
    ...optionFields(body.options, model),
    ...thinkKwargs(body.think),
  };
}

/** /api/generate: `system` and `prompt` as one user turn of the chat template. */
export function translateOllamaGenerate(body: OllamaGenerateBody, model: ServedModel): ChatRequestBody {
  resolveOllamaModel(body.model, model);
  noImages(body.images, 'images');
  if (body.raw === true) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["'raw' prompts are not supported: hearth renders the model's own chat template (use /v1/completions for raw text)."], { param: 'raw' });
  if (body.template !== undefined && body.template !== '') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["'template' is not supported: hearth renders the model's own chat template."], { param: 'template' });
  if (body.suffix !== undefined && body.suffix !== '') throw new HearthError('HEARTH_ERR_INVALID_REQUEST', ["'suffix' is not supported here: use /v1/completions with suffix for fill-in-the-middle."], { param: 'suffix' });
  const format = formatOf(body.format);
  const messages: ChatMessageBody[] = [
    ...(body.system === undefined || body.system === '' ? [] : [{ role: 'system' as const, content: body.system }]),
    { role: 'user', content: body.prompt ?? '' },
  ];
  return {
    model: model.id,
    messages,
    ...(format === undefined ? {} : { response_format: format }),
    ...optionFields(body.options, model),
    ...thinkKwargs(body.think),
  };
}
