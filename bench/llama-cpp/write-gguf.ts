// npm run gguf -- --model DIR [--out FILE] [--quant q4_0|q8_0|f16|f32]
// Writes a GGUF of a hearth/Hugging Face checkpoint folder for llama.cpp (default Q4_0, as
// llama-quantize makes it; see src/hf-to-gguf.ts).

import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertCheckpoint, QUANTS, type Quant } from './src/hf-to-gguf.ts';
import { typeName, type GgmlType } from './src/ggml-quant.ts';

const { values } = parseArgs({ options: { model: { type: 'string' }, out: { type: 'string' }, quant: { type: 'string', default: 'q4_0' } } });
if (values.model === undefined || !(QUANTS as readonly string[]).includes(values.quant)) {
  process.stderr.write(`usage: npm run gguf -- --model DIR [--out FILE] [--quant ${QUANTS.join('|')}]\n`);
  process.exit(2);
}
const quant = values.quant as Quant;
const out = values.out ?? path.join(values.model, `model-${quant}.gguf`);
const t0 = performance.now();
const r = convertCheckpoint(values.model, out, quant);
const types = Object.entries(r.types).map(([t, n]) => `${n} ${typeName(Number(t) as GgmlType)}`).join(', ');
process.stdout.write(`${out}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.tensors} tensors (${types}), arch ${r.arch}, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
