// Tokenizing a big prompt off the gateway's event loop, with a deadline (issue 19, item 2).
//
// BPE is superlinear in the length of one pre-token: 3.9 MB of spaces took 175 s to tokenize with
// Qwen's tokenizer and 3.8 MB of code 8.7 s, both under a 32k context's length precheck, and all
// of it ran on the event loop that answers /health and hears worker heartbeats (lost after 3 s).
// Texts above INLINE_CHARS go to a worker thread that loads the same tokenizer.json (so the ids are
// the same ones), one job at a time; a job past its deadline is a 400 and its thread is ended
// (a fresh one takes the next job). Small texts stay inline: a thread hop costs more than they do.

import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { HearthError } from '../errors/index.ts';
import { spawnThread } from '../runtime/spawn-thread.ts';
import type { ChatMessage, ChatTemplate, Tokenizer } from '../tokenizer/types.ts';
import type { EncodeAnswer, EncodeJob } from './encode-thread.ts';
import type { RenderOptions } from './template.ts';

/** Texts up to this many UTF-16 units are tokenized inline (~20 ms at worst on ordinary text). */
export const INLINE_CHARS = 16 * 1024;
/** Longest a prompt may take to tokenize; ordinary text of the 4 MiB body limit takes under 10 s. */
export const ENCODE_DEADLINE_MS = 30_000;

/** Conversations of more messages are rendered off the loop too (~50 µs a message inline). */
export const INLINE_MESSAGES = 256;

/** Where each loaded tokenizer and template came from (loadChatTemplate registers both). */
const dirs = new WeakMap<Tokenizer | ChatTemplate, string>();

export function registerModelDir(tok: Tokenizer, template: ChatTemplate | null, dir: string): void {
  dirs.set(tok, path.resolve(dir));
  if (template !== null) dirs.set(template, path.resolve(dir));
}

type JobBody = { readonly kind: 'encode'; readonly text: string; readonly addSpecialTokens: boolean } | { readonly kind: 'render'; readonly messages: readonly ChatMessage[]; readonly opts: RenderOptions };

interface Done {
  readonly ids: Int32Array;
  readonly text?: string | undefined;
}

interface Pending {
  readonly job: EncodeJob;
  readonly deadlineMs: number;
  resolve(d: Done): void;
  reject(e: unknown): void;
}

/** One tokenizer thread for one model folder, with its queue. */
class EncodeThread {
  private worker: Worker | null = null;
  private readonly queue: Pending[] = [];
  private head = 0;
  private running: Pending | null = null;
  private timer: NodeJS.Timeout | null = null;
  private nextId = 0;

  constructor(private readonly dir: string) {}

  run(body: JobBody, deadlineMs: number): Promise<Done> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, ...body } as EncodeJob, deadlineMs, resolve, reject });
      this.pump();
    });
  }

  private start(): Worker {
    const w = spawnThread(new URL('./encode-thread.ts', import.meta.url), { workerData: { dir: this.dir } });
    w.on('message', (m: EncodeAnswer) => this.answer(m));
    w.on('error', (e) => this.fail(e));
    w.on('exit', () => {
      if (this.worker === w) {
        this.worker = null;
        this.fail(new Error('the tokenizer thread exited'));
      }
    });
    // An idle tokenizer thread never keeps the process alive (unref'd after the listeners: adding
    // a 'message' listener refs the thread's port again).
    w.unref();
    return w;
  }

  private pump(): void {
    if (this.running !== null || this.head >= this.queue.length) return;
    const p = this.queue[this.head]!;
    this.queue[this.head++] = undefined as unknown as Pending;
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.running = p;
    this.worker ??= this.start();
    // Held while it works (a caller awaits it), let go when idle.
    this.worker.ref();
    this.worker.postMessage(p.job);
    // The deadline counts from when the thread takes the job (loading the tokenizer included once).
    this.timer = setTimeout(() => this.expire(p), p.deadlineMs);
    this.timer.unref();
  }

  private answer(m: EncodeAnswer): void {
    if (m.id === -1) return;
    const p = this.running;
    if (p === null || p.job.id !== m.id) return;
    this.settle();
    if ('ids' in m) p.resolve({ ids: m.ids, text: m.text });
    else if ('error' in m) {
      // The template's refusal is already worded for the client (template.ts); anything else is ours.
      p.reject(m.invalid ? new HearthError('HEARTH_ERR_INVALID_REQUEST', [m.error], { param: 'messages' }) : new HearthError('HEARTH_ERR_INTERNAL', [`tokenizer thread: ${m.error.slice(0, 300)}`]));
    }
    this.pump();
  }

  private expire(p: Pending): void {
    if (this.running !== p) return;
    this.settle();
    const w = this.worker;
    this.worker = null;
    void w?.terminate();
    p.reject(new HearthError('HEARTH_ERR_INVALID_REQUEST', [`The prompt took longer than ${p.deadlineMs / 1000} s to render and tokenize (limit ${p.deadlineMs / 1000} s; very long runs of one kind of character, such as spaces, are slow): shorten it.`], { param: 'messages' }));
    this.pump();
  }

  private fail(e: unknown): void {
    const p = this.running;
    if (p === null) return;
    this.settle();
    p.reject(new HearthError('HEARTH_ERR_INTERNAL', [`tokenizer thread: ${e instanceof Error ? e.message : String(e)}`], { cause: e }));
    this.pump();
  }

  private settle(): void {
    this.worker?.unref();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.running = null;
  }
}

const threads = new Map<string, EncodeThread>();

function threadFor(dir: string): EncodeThread {
  let t = threads.get(dir);
  if (t === undefined) {
    t = new EncodeThread(dir);
    threads.set(dir, t);
  }
  return t;
}

/** The thread's 400s name the request's own param. */
function respell(e: unknown, param: string | undefined): unknown {
  if (e instanceof HearthError && e.code === 'HEARTH_ERR_INVALID_REQUEST' && param !== undefined && e.param !== param) {
    return new HearthError('HEARTH_ERR_INVALID_REQUEST', [e.message], { param });
  }
  return e;
}

/**
 * `tok.encode(text)` as Int32Array, off the event loop when the text is big and the tokenizer's
 * folder is known (else inline). Rejects with a 400 (param `param`) past `deadlineMs`.
 */
export async function encodeOffLoop(tok: Tokenizer, text: string, opts: { addSpecialTokens: boolean; param?: string; deadlineMs?: number }): Promise<Int32Array> {
  const dir = dirs.get(tok);
  if (text.length <= INLINE_CHARS || dir === undefined) return Int32Array.from(tok.encode(text, { addSpecialTokens: opts.addSpecialTokens }));
  try {
    return (await threadFor(dir).run({ kind: 'encode', text, addSpecialTokens: opts.addSpecialTokens }, opts.deadlineMs ?? ENCODE_DEADLINE_MS)).ids;
  } catch (e) {
    throw respell(e, opts.param);
  }
}

/**
 * A conversation rendered with the model's template and tokenized (no special tokens added), on
 * the thread when it is long (more than INLINE_MESSAGES messages or INLINE_CHARS characters of
 * content) and the template was loaded from a folder; null when it should be done inline (the
 * caller then renders as it always did, with its own error wording).
 */
export async function renderOffLoop(template: ChatTemplate, tok: Tokenizer, messages: readonly ChatMessage[], opts: RenderOptions, chars: number, extra: { param?: string; deadlineMs?: number } = {}): Promise<{ text: string; ids: Int32Array } | null> {
  const dir = dirs.get(template);
  if (dir === undefined || dirs.get(tok) !== dir || (messages.length <= INLINE_MESSAGES && chars <= INLINE_CHARS)) return null;
  try {
    const d = await threadFor(dir).run({ kind: 'render', messages, opts }, extra.deadlineMs ?? ENCODE_DEADLINE_MS);
    return { text: d.text ?? '', ids: d.ids };
  } catch (e) {
    throw respell(e, extra.param);
  }
}
