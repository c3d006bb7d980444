// Chat templates: the model's own Jinja template (tokenizer_config.json `chat_template`, or the
// chat_template.jinja / chat_template.json files newer transformers write) rendered with
// @huggingface/jinja, given what transformers' apply_chat_template gives it: messages, tools,
// add_generation_prompt and the special-token strings.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { HearthError } from '../errors/index.ts';
import { registerModelDir } from './encode-off-loop.ts';
import type { ChatMessage, ChatTemplate, Tokenizer, ToolDef } from '../tokenizer/types.ts';

type Json = Record<string, unknown>;

/** Options render() accepts beyond the ChatTemplate interface. */
export interface RenderOptions {
  readonly tools?: readonly ToolDef[];
  readonly addGenerationPrompt: boolean;
  /** Extra template variables, e.g. { enable_thinking: false } for Qwen3. */
  readonly vars?: Readonly<Record<string, unknown>>;
}

export interface LoadedChatTemplate extends ChatTemplate {
  render(messages: readonly ChatMessage[], opts: RenderOptions): string;
  /** Names of the templates found ("default", "tool_use", …). */
  readonly names: readonly string[];
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, (e as Error).message], { cause: e });
  }
}

function parseJson(file: string, text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, `invalid JSON: ${(e as Error).message}`], { cause: e });
  }
}

/** chat_template is a string or a list of {name, template} (transformers ≥ 4.40 "named templates"). */
function namedTemplates(v: unknown, file: string): Map<string, string> {
  const out = new Map<string, string>();
  if (typeof v === 'string') out.set('default', v);
  else if (Array.isArray(v)) {
    for (const t of v as { name?: unknown; template?: unknown }[]) {
      if (typeof t?.name !== 'string' || typeof t.template !== 'string') {
        throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, 'chat_template list entries need a string name and template']);
      }
      out.set(t.name, t.template);
    }
  }
  return out;
}

async function findTemplates(dir: string): Promise<{ file: string; templates: Map<string, string>; config: Json }> {
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const cfgText = await readText(cfgFile);
  const config = cfgText === null ? {} : parseJson(cfgFile, cfgText);
  // Precedence as in transformers: a standalone chat_template.jinja, then chat_template.json,
  // then the field in tokenizer_config.json.
  const jinjaFile = path.join(dir, 'chat_template.jinja');
  const jinja = await readText(jinjaFile);
  if (jinja !== null) return { file: jinjaFile, templates: new Map([['default', jinja]]), config };
  const jsonFile = path.join(dir, 'chat_template.json');
  const json = await readText(jsonFile);
  if (json !== null) return { file: jsonFile, templates: namedTemplates(parseJson(jsonFile, json)['chat_template'], jsonFile), config };
  return { file: cfgFile, templates: namedTemplates(config['chat_template'], cfgFile), config };
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * What a message looks like to the template. Tool-call arguments arrive from OpenAI clients as JSON
 * strings; transformers' templates expect the parsed object (Qwen/Llama/Hermes do `arguments | tojson`),
 * so they are parsed here, and kept as the string only when they are not valid JSON. content null
 * (an assistant turn that only calls tools) becomes "" because templates test `'</think>' in content`
 * or concatenate it. The "developer" role (OpenAI's new name for system) renders as "system".
 */
function toTemplateMessage(m: ChatMessage): Json {
  const out: Json = { role: m.role === 'developer' ? 'system' : m.role, content: m.content ?? '' };
  if (m.name !== undefined) out['name'] = m.name;
  if (m.tool_call_id !== undefined) out['tool_call_id'] = m.tool_call_id;
  if (m.tool_calls !== undefined && m.tool_calls.length > 0) {
    out['tool_calls'] = m.tool_calls.map((c) => {
      let args: unknown = c.function.arguments;
      try { args = JSON.parse(c.function.arguments); } catch { /* not JSON: the template gets the string */ }
      return { id: c.id, type: c.type, function: { name: c.function.name, arguments: args } };
    });
  }
  return out;
}

/** JSON-clean copy of the tools (drops undefined members that Jinja would print as "undefined"). */
const plainTools = (tools: readonly ToolDef[]): unknown => JSON.parse(JSON.stringify(tools));

/**
 * Loads dir's chat template. Throws HEARTH_ERR_CHECKPOINT_CONFIG when there is none or it does not
 * parse. render() throws HEARTH_ERR_INVALID_REQUEST when the template rejects the conversation (its
 * raise_exception, e.g. "roles must alternate").
 */
export async function loadChatTemplate(dir: string, tok: Tokenizer): Promise<LoadedChatTemplate> {
  const { file, templates, config } = await findTemplates(dir);
  if (templates.size === 0) throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, 'no chat_template: this model has no chat format; use /v1/completions']);
  const compiled = new Map<string, Template>();
  for (const [name, src] of templates) {
    try {
      compiled.set(name, new Template(src));
    } catch (e) {
      throw new HearthError('HEARTH_ERR_CHECKPOINT_CONFIG', [file, `chat_template ${name} does not parse: ${(e as Error).message}`], { cause: e });
    }
  }
  const fallback = compiled.get('default') ?? [...compiled.values()][0]!;
  const toolUse = compiled.get('tool_use');

  // Special-token strings, as transformers passes its special_tokens_map; a missing one stays
  // undefined (the template's `is defined` tests then behave as in Python).
  const specials: Json = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
    const s = tokenString(config[key]);
    if (s !== undefined) specials[key] = s;
  }
  if (specials['bos_token'] === undefined && tok.bosTokenId !== null) specials['bos_token'] = tok.decode([tok.bosTokenId]);

  const loaded: LoadedChatTemplate = {
    names: [...compiled.keys()],
    render(messages, opts) {
      const hasTools = opts.tools !== undefined && opts.tools.length > 0;
      const template = hasTools && toolUse !== undefined ? toolUse : fallback;
      const ctx: Json = {
        ...specials,
        ...opts.vars,
        messages: messages.map(toTemplateMessage),
        add_generation_prompt: opts.addGenerationPrompt,
      };
      if (hasTools) ctx['tools'] = plainTools(opts.tools!);
      try {
        return template.render(ctx);
      } catch (e) {
        throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`chat template: ${(e as Error).message}`], { param: 'messages', cause: e });
      }
    },
  };
  // The tokenizer and this template come from `dir`: long conversations are rendered and
  // tokenized off the event loop by a thread that loads both from there (encode-off-loop.ts).
  registerModelDir(tok, loaded, dir);
  return loaded;
}
