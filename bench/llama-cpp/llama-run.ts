// One llama.cpp measurement in its own process (so its resident set is its own, like hearth's
// bench child): load a GGUF through node-llama-cpp's prebuilt CPU build, prefill a prompt, decode
// greedily, print one JSON object. The prompt is hearth's bench prompt (the same token ids), or
// --text (tokenized by llama.cpp, BOS per the GGUF's add_bos_token), or --ids.
//
//   tsx llama-run.ts --gguf FILE (--context N | --text T | --ids 1,2,3) [--decode-tokens 32] [--threads 2]

import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { benchPromptIds } from '../../src/runtime/bench-prompt.ts';

const { values } = parseArgs({
  options: {
    gguf: { type: 'string' },
    context: { type: 'string' },
    text: { type: 'string' },
    ids: { type: 'string' },
    'decode-tokens': { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
  },
});
if (values.gguf === undefined || [values.context, values.text, values.ids].every((v) => v === undefined)) {
  process.stderr.write('usage: tsx llama-run.ts --gguf FILE (--context N | --text T | --ids 1,2,3) [--decode-tokens 32] [--threads 2]\n');
  process.exit(2);
}
const threads = Number(values.threads);
const decodeTokens = Number(values['decode-tokens']);

let peak = process.memoryUsage.rss();
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);

const llama = await getLlama({ gpu: false, build: 'never', maxThreads: threads, logLevel: LlamaLogLevel.error });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: values.gguf });
const vocab = model.fileInfo.tensorInfo?.find((t) => t.name === 'token_embd.weight')?.dimensions[1];
let prompt: number[];
if (values.context !== undefined) prompt = [...benchPromptIds(Number(values.context), Number(vocab))];
else if (values.ids !== undefined) prompt = values.ids.split(',').map(Number);
else {
  prompt = model.tokenize(values.text as string, false) as number[];
  if (model.tokens.shouldPrependBosToken && model.tokens.bos !== null) prompt.unshift(model.tokens.bos as number);
}
const context = await model.createContext({ threads: { ideal: threads, min: threads }, contextSize: prompt.length + decodeTokens + 8 });
const loadMs = performance.now() - t0;
const sequence = context.getSequence();

const rss0 = peak;
const pc0 = process.cpuUsage();
const p0 = performance.now();
const gen = sequence.evaluate(prompt as Token[], { temperature: 0 });
const greedyIds: number[] = [];
let step = await gen.next();
const ttftMs = performance.now() - p0;
const prefillCpu = process.cpuUsage(pc0);
if (!step.done) greedyIds.push(step.value as number);
const dc0 = process.cpuUsage();
const d0 = performance.now();
for (let i = 0; i < decodeTokens && !step.done; i++) {
  step = await gen.next();
  if (!step.done) greedyIds.push(step.value as number);
}
const decodeMs = performance.now() - d0;
const decodeCpu = process.cpuUsage(dc0);
await gen.return();
const decoded = greedyIds.length - 1;
const rssBytes = process.memoryUsage.rss();
clearInterval(sampler);
const result = {
  engine: 'llama.cpp',
  context: prompt.length,
  decodeTokens: decoded,
  prefillChunk: context.batchSize,
  prefillTokS: prompt.length / (ttftMs / 1000),
  decodeTokS: decoded / (decodeMs / 1000),
  ttftMs,
  // Process CPU time per token (all threads): the work itself, less sensitive to a busy host than
  // wall time. llama.cpp's threads spin while they wait for each other, which counts here too.
  prefillCpuMsPerToken: (prefillCpu.user + prefillCpu.system) / 1000 / prompt.length,
  decodeCpuMsPerToken: (decodeCpu.user + decodeCpu.system) / 1000 / Math.max(1, decoded),
  loadMs,
  rssPeakBytes: Math.max(peak, rssBytes),
  rssBytes,
  rssBeforePromptBytes: rss0,
  weightBytes: model.size,
  kvBytes: context.stateSize,
  flashAttention: context.flashAttention,
  threads: context.currentThreads,
  greedyIds,
  ...(values.text !== undefined ? { promptIds: prompt, text: model.detokenize(greedyIds as Token[]) } : {}),
};
await context.dispose();
await model.dispose();
process.stdout.write(JSON.stringify(result) + '\n');
