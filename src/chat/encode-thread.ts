// Worker-thread entry of encode-off-loop.ts: loads the model's tokenizer (and, for render jobs,
// its chat template) from its folder once, and answers the jobs posted to it one at a time: a
// text's ids, or a conversation rendered with the template and then tokenized (ids transferred).

import { parentPort, workerData } from 'node:worker_threads';
import { isHearthError } from '../errors/index.ts';
import { loadTokenizer } from '../tokenizer/index.ts';
import type { ChatMessage } from '../tokenizer/types.ts';
import type { LoadedChatTemplate, RenderOptions } from './template.ts';

export type EncodeJob =
  | { readonly id: number; readonly kind: 'encode'; readonly text: string; readonly addSpecialTokens: boolean }
  | { readonly id: number; readonly kind: 'render'; readonly messages: readonly ChatMessage[]; readonly opts: RenderOptions };

export type EncodeAnswer =
  | { readonly id: number; readonly ids: Int32Array; readonly text?: string }
  /** invalid: the request's fault (the template refused the conversation): a 400 with `error`. */
  | { readonly id: number; readonly error: string; readonly invalid: boolean }
  | { readonly id: -1; readonly ready: true };

const port = parentPort;
if (!port) throw new Error('encode-thread must run in a worker thread');
const dir = (workerData as { dir: string }).dir;
const tok = await loadTokenizer(dir);
let template: LoadedChatTemplate | null = null;

port.on('message', async (job: EncodeJob) => {
  try {
    if (job.kind === 'encode') {
      const ids = Int32Array.from(tok.encode(job.text, { addSpecialTokens: job.addSpecialTokens }));
      port.postMessage({ id: job.id, ids } satisfies EncodeAnswer, [ids.buffer as ArrayBuffer]);
      return;
    }
    template ??= await (await import('./template.ts')).loadChatTemplate(dir, tok);
    const text = template.render(job.messages, job.opts);
    const ids = Int32Array.from(tok.encode(text, { addSpecialTokens: false }));
    port.postMessage({ id: job.id, ids, text } satisfies EncodeAnswer, [ids.buffer as ArrayBuffer]);
  } catch (e) {
    const invalid = isHearthError(e) && e.code === 'HEARTH_ERR_INVALID_REQUEST';
    port.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e), invalid } satisfies EncodeAnswer);
  }
});
port.postMessage({ id: -1, ready: true } satisfies EncodeAnswer);
