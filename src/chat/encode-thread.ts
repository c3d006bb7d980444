// Worker-thread entry of encode-off-loop.ts: loads the model's tokenizer from its folder once and
// tokenizes the texts posted to it, one at a time, answering with the ids (buffer transferred).

import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../tokenizer/index.ts';

export interface EncodeJob {
  readonly id: number;
  readonly text: string;
  readonly addSpecialTokens: boolean;
}

export type EncodeAnswer =
  | { readonly id: number; readonly ids: Int32Array }
  | { readonly id: number; readonly error: string }
  | { readonly id: -1; readonly ready: true };

const port = parentPort;
if (!port) throw new Error('encode-thread must run in a worker thread');
const tok = await loadTokenizer((workerData as { dir: string }).dir);
port.on('message', (job: EncodeJob) => {
  try {
    const ids = Int32Array.from(tok.encode(job.text, { addSpecialTokens: job.addSpecialTokens }));
    port.postMessage({ id: job.id, ids } satisfies EncodeAnswer, [ids.buffer as ArrayBuffer]);
  } catch (e) {
    port.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) } satisfies EncodeAnswer);
  }
});
port.postMessage({ id: -1, ready: true } satisfies EncodeAnswer);
