// npm run agreement -- --model DIR [--quants q4_0,q4_k_m] [--tokens 512] [--threads 1] [--json]
//
// hearth reading a GGUF against llama.cpp (node-llama-cpp's prebuilt CPU build) reading the same
// file, in one run: the checkpoint is written as each GGUF type (src/hf-to-gguf.ts), a story text is
// tokenized by hearth from the GGUF's own metadata, and both engines are teacher-forced over the
// same token ids; the figure is the share of positions whose greedy next token is the same. hearth
// runs the file three times: --quant none (the GGUF's values exactly, fp32), --quant int4 as it
// builds a GGUF by default (the file's blocks carried into MatMulNBits as they are, issue 24;
// accuracy_level 4, int8 activations) and --quant int4 requantized as before that
// (HEARTH_GGUF_REQUANTIZE=1, at the default block, HEARTH_INT4_BLOCK or 128). Then the load time of the
// Q4_0 file: hearth cold (new state and shard cache: digest, decode, build) and cached, against
// llama.cpp's load + context. The host is shared and noisy: read ratios from one run.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { convertCheckpoint, QUANTS, type Quant } from './src/hf-to-gguf.ts';
import { typeName, type GgmlType } from './src/ggml-quant.ts';
import { loadLocalModel } from '../../src/cli/local-model.ts';
import { resolveGgufModel } from '../../src/cli/served-model.ts';
import { GREEDY } from '../../src/sampling/types.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    quants: { type: 'string', default: 'q4_0,q4_k_m' },
    tokens: { type: 'string', default: '512' },
    threads: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
if (values.model === undefined) {
  process.stderr.write('usage: npm run agreement -- --model DIR [--quants q4_0,q4_k_m] [--tokens 512] [--threads 1] [--json]\n');
  process.exit(2);
}
const quants = values.quants.split(',') as Quant[];
for (const q of quants) if (!(QUANTS as readonly string[]).includes(q)) throw new Error(`--quants: ${q} is not one of ${QUANTS.join(', ')}`);
const nTokens = Number(values.tokens);
const threads = Number(values.threads);
const log = (s: string): void => void process.stderr.write(s + '\n');

const STORY = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog, Max. One sunny day, Lily saw a big red ball under a tree. She ran to the ball and picked it up. "Look, Max! A ball!" she said. Max wagged his tail and barked. They played with the ball all day. Then it started to rain. Lily and Max ran home. Her mom gave her a warm towel and a cup of milk. Lily was happy. She said, "Thank you, Mom. I love you." Her mom smiled and gave her a big hug.
The next day, Lily went back to the park. She saw a boy named Tom. Tom was sad because he lost his toy car. Lily wanted to help him. They looked under the slide, behind the bench and near the pond. At last, Max found the car in the grass. Tom was so happy. He said, "Thank you, Lily! You are a good friend." Lily and Tom played together until the sun went down. From that day on, they were best friends, and they played in the park every day.
One morning, a little bird fell from its nest. Lily and Tom saw the bird on the ground. It could not fly. Lily picked it up very gently. "We need to help the bird," she said. Tom found a small box and some soft leaves. They put the bird in the box and gave it some water. After a few days, the bird was strong again. It flew up to the tree and sang a happy song. Lily and Tom waved goodbye. They learned that it is good to be kind to all animals, big and small.`;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-agree-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
process.env['HEARTH_CACHE_DIR'] = path.join(work, 'shards');
const llama = await getLlama({ gpu: false, build: 'never', maxThreads: threads, logLevel: LlamaLogLevel.error });

/** Next-token argmax at every position, hearth engine, one token per step (teacher forcing). */
async function hearthNext(dir: string, ids: readonly number[], quant: 'none' | 'int4'): Promise<number[]> {
  const m = await loadLocalModel(dir, { threads, quant });
  const out: number[] = [];
  try {
    for (let i = 0; i < ids.length; i++) {
      const r = await m.pipeline.step({ seq: 's', pos: i, tokens: Int32Array.of(ids[i] as number), promptLen: 1, sampling: GREEDY, wantToken: true, wantLogits: false });
      out.push(r.token?.token ?? -1);
    }
    m.pipeline.free('s');
  } finally {
    await m.pipeline.close();
  }
  return out;
}

async function llamaNext(file: string, ids: readonly number[]): Promise<number[]> {
  const model = await llama.loadModel({ modelPath: file });
  const ctx = await model.createContext({ contextSize: ids.length + 8, threads: { ideal: threads, min: threads } });
  try {
    const seq = ctx.getSequence();
    const res = await seq.controlledEvaluate(ids.map((t) => [t as Token, { generateNext: { token: true, options: { temperature: 0 } } }]));
    return ids.map((_, i) => (res[i]?.next?.token as number | undefined) ?? -1);
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

interface Row { quant: string; types: string; hearthNone: number; hearthCarried: number; hearthRequantized: number; positions: number }
const rows: Row[] = [];
let q40File: string | null = null;
for (const quant of quants) {
  const file = path.join(work, `${path.basename(values.model)}-${quant}.gguf`);
  const conv = convertCheckpoint(values.model, file, quant);
  if (quant === 'q4_0') q40File = file;
  const dir = await resolveGgufModel(file, path.join(work, 'state')) as string;
  const tok = await loadTokenizer(dir);
  let ids = tok.encode(STORY, { addSpecialTokens: true });
  while (ids.length < nTokens) ids = [...ids, ...tok.encode(STORY, { addSpecialTokens: false })];
  ids = ids.slice(0, nTokens);
  const ref = await llamaNext(file, ids);
  const none = await hearthNext(dir, ids, 'none');
  const carried = await hearthNext(dir, ids, 'int4');
  process.env['HEARTH_GGUF_REQUANTIZE'] = '1';
  const requantized = await hearthNext(dir, ids, 'int4');
  delete process.env['HEARTH_GGUF_REQUANTIZE'];
  const same = (a: readonly number[], b: readonly number[]): number => a.filter((x, i) => x === b[i]).length / a.length;
  const types = Object.entries(conv.types).map(([t, n]) => `${n} ${typeName(Number(t) as GgmlType)}`).join(', ');
  rows.push({ quant, types, hearthNone: same(none, ref), hearthCarried: same(carried, ref), hearthRequantized: same(requantized, ref), positions: ids.length });
  log(`${quant}: ${ids.length} positions; same next token as llama.cpp: hearth fp32 ${(100 * same(none, ref)).toFixed(1)}%, int4 carried (default) ${(100 * same(carried, ref)).toFixed(1)}%, int4 requantized ${(100 * same(requantized, ref)).toFixed(1)}%; carried = fp32 at ${(100 * same(carried, none)).toFixed(1)}%`);
}

// Load time of the Q4_0 file, one after the other.
let load: Record<string, number> | null = null;
if (q40File !== null) {
  const home = path.join(work, 'state-load');
  process.env['HEARTH_CACHE_DIR'] = path.join(work, 'shards-load');
  const hearthLoad = async (): Promise<number> => {
    const t0 = performance.now();
    const dir = await resolveGgufModel(q40File as string, home) as string;
    const m = await loadLocalModel(dir, { threads, quant: 'int4' });
    const ms = performance.now() - t0;
    await m.pipeline.close();
    return ms;
  };
  const cold = await hearthLoad();
  const cached = await hearthLoad();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: q40File });
  const ctx = await model.createContext({ contextSize: 512, threads: { ideal: threads, min: threads } });
  const llamaMs = performance.now() - t0;
  await ctx.dispose();
  await model.dispose();
  load = { hearthColdMs: cold, hearthCachedMs: cached, llamaCppMs: llamaMs };
  log(`Q4_0 load: hearth cold ${cold.toFixed(0)} ms, cached ${cached.toFixed(0)} ms; llama.cpp ${llamaMs.toFixed(0)} ms (cold/llama ${(cold / llamaMs).toFixed(2)}×, cached/llama ${(cached / llamaMs).toFixed(2)}×)`);
}

if (values.json) process.stdout.write(JSON.stringify({ model: path.basename(values.model), threads, rows, load }, null, 1) + '\n');
else {
  process.stdout.write(`| GGUF | tensors | hearth --quant none | hearth int4, carried (default) | int4 requantized | positions |\n|---|---|---|---|---|---|\n`);
  for (const r of rows) process.stdout.write(`| ${r.quant} | ${r.types} | ${(100 * r.hearthNone).toFixed(1)}% | ${(100 * r.hearthCarried).toFixed(1)}% | ${(100 * r.hearthRequantized).toFixed(1)}% | ${r.positions} |\n`);
}
process.exit(0);
