// Issue 24, the Q8_0 line: is a Q8_0 GGUF served by hearth identical to hearth on the original
// safetensors? The part hearth controls is carrying the file's values without loss; this prints,
// for one prompt, the greedy tokens of (a) the safetensors at fp32, (b) the Q8_0 file at fp32 (its
// values decoded exactly), (c) the file's blocks carried into MatMulNBits with fp32 activations
// (accuracy_level 0) and (d) as served by default (accuracy_level 4, int8 activations, as llama.cpp
// computes Q8_0 dot products), each one's first difference from (a) and the original's top-two
// margin there. node --import tsx q8-identity.ts --model DIR [--tokens 24] [--prompt TEXT]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertCheckpoint } from './src/hf-to-gguf.ts';
import { resolveGgufModel } from '../../src/cli/served-model.ts';
import { createShardEngine } from '../../src/runtime/index.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

const { values } = parseArgs({ options: { model: { type: 'string' }, tokens: { type: 'string', default: '24' }, prompt: { type: 'string', default: 'Once upon a time' }, quant: { type: 'string', default: 'q8_0' } } });
if (values.model === undefined) throw new Error('--model DIR');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-q8id-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
process.env['HEARTH_SHARD_CACHE_DIR'] = path.join(work, 'shards');
const file = path.join(work, 'm.gguf');
convertCheckpoint(values.model, file, values.quant as 'q8_0');
const view = (await resolveGgufModel(file, path.join(work, 'state'))) as string;
const tok = await loadTokenizer(values.model);
const prompt = tok.encode(values.prompt, { addSpecialTokens: true });
const n = Number(values.tokens);

/** Greedy continuation, and the logits of every step. */
async function run(dir: string, quant: 'none' | 'int4', accuracyLevel?: number): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { num_hidden_layers: number };
  const e = await createShardEngine(dir, { start: 0, end: cfg.num_hidden_layers, quant, threads: 1, provider: 'cpu' }, accuracyLevel === undefined ? {} : { accuracyLevel });
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let toks = Int32Array.from(prompt);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const [r] = await e.run([{ seq: 's', pos, n: toks.length, tokens: toks }]);
    const l = r?.logits as Float32Array;
    logits.push(l);
    let best = 0;
    for (let v = 1; v < l.length; v++) if ((l[v] as number) > (l[best] as number)) best = v;
    ids.push(best);
    pos += toks.length;
    toks = Int32Array.of(best);
  }
  await e.close();
  return { ids, logits };
}

const ref = await run(values.model, 'none');
const variants: [string, Promise<{ ids: number[]; logits: Float32Array[] }> | { ids: number[]; logits: Float32Array[] }][] = [
  ['file fp32 (--quant none)', await run(view, 'none')],
  ['file carried, accuracy_level 0', await run(view, 'int4', 0)],
  ['file carried, accuracy_level 4 (default)', await run(view, 'int4', 4)],
];
const filefp32 = (variants[0]?.[1] as { ids: number[]; logits: Float32Array[] });
console.log(`safetensors fp32: ${JSON.stringify(tok.decode(ref.ids, { skipSpecialTokens: true }))}`);
for (const [name, vv] of variants) {
  const v = await vv;
  const at = v.ids.findIndex((x, i) => x !== ref.ids[i]);
  let line = `${name}: ${at < 0 ? 'identical' : `first differs at token ${at}`}`;
  if (at >= 0) {
    const l = ref.logits[at] as Float32Array;
    line += ` (the safetensors' ${ref.ids[at]} vs ${v.ids[at]}: margin ${((l[ref.ids[at] as number] as number) - (l[v.ids[at] as number] as number)).toFixed(4)})`;
  }
  // Against the file's own fp32 values, up to the first difference from them.
  const at2 = v.ids.findIndex((x, i) => x !== filefp32.ids[i]);
  let worst = 0;
  for (let i = 0; i < (at2 < 0 ? n : at2 + 1); i++) {
    const a = v.logits[i] as Float32Array;
    const b = filefp32.logits[i] as Float32Array;
    for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs((a[k] as number) - (b[k] as number)));
  }
  line += `; vs the file at fp32: ${at2 < 0 ? 'same tokens' : `differs at token ${at2}`}, max |Δlogit| ${worst.toExponential(2)}`;
  console.log(line + `: ${JSON.stringify(tok.decode(v.ids, { skipSpecialTokens: true }))}`);
}
// llama.cpp on the same file, fed the safetensors' greedy text: where does it first pick otherwise?
const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file });
const ctx = await model.createContext({ contextSize: prompt.length + n + 8, threads: { ideal: 1, min: 1 } });
const ids = [...prompt, ...ref.ids];
const res = await ctx.getSequence().controlledEvaluate(ids.map((t) => [t as Token, { generateNext: { token: true, options: { temperature: 0 } } }]));
const next = ids.map((_, i) => (res[i]?.next?.token as number | undefined) ?? -1).slice(prompt.length - 1, prompt.length - 1 + n);
const atL = next.findIndex((x, i) => x !== ref.ids[i]);
console.log(`llama.cpp on the ${values.quant} file, fed the safetensors' greedy tokens: ${atL < 0 ? 'picks the same every step' : `first picks ${next[atL]} at token ${atL} (the safetensors: ${ref.ids[atL]})`}`);
process.exit(0);
