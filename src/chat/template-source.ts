import path from 'node:path';
import { readFileSync } from 'node:fs';

/**
 * The chat template's jinja source from tokenizer_config.json (a string, or the "default" entry of
 * a named list); "" when there is none. Tool-call syntax detection reads the text itself.
 */
export function chatTemplateSource(dir: string): string {
  try {
    const cfg = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template?: string | { name: string; template: string }[] };
    const ct = cfg.chat_template;
    if (typeof ct === 'string') return ct;
    if (Array.isArray(ct)) return (ct.find((x) => x.name === 'default') ?? ct[0])?.template ?? '';
  } catch {
    // no (readable) tokenizer_config.json: loadChatTemplate reports it
  }
  return '';
}
