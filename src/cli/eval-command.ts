// `hearth eval`: how far a quantization moves a model's predictions, over a text, against the fp32
// reference (issue 25): perplexity, KL divergence per position and top-1 agreement, as llama.cpp's
// perplexity tool reports them with --kl-divergence. `--against FILE.gguf` adds the same figures
// for llama.cpp's quantization of the same weights (dequantized by hearth's GGUF reader and run
// through hearth's fp32 path), so block sizes and formats are compared on one scale.

import fs from 'node:fs';
import { parseFlags as parseArgs } from './flags.ts';
import { HearthError } from '../errors/index.ts';
import { openCheckpoint } from '../model/index.ts';
import { createShardEngine } from '../runtime/index.ts';
import type { ShardEngine } from '../runtime/types.ts';
import { loadTokenizer } from '../tokenizer/index.ts';
import { QualityMeter, type QualityFigures } from '../eval/logit-metrics.ts';
import { teacherForced } from '../eval/teacher-forced.ts';
import { resolveOrPullModel } from './served-model.ts';

export const usage = `hearth eval --model DIR|FILE.gguf --text FILE [--quant int4|none] [--int4-block 32,64,128]
            [--accuracy-level 4,0] [--vocab-bits 4,8] [--int4-zero-points no,yes] [--against FILE.gguf|DIR ...] [--tokens 512] [--chunk 128] [--threads N] [--json]
Teacher-forces the text's first --tokens tokens through the fp32 reference (the checkpoint as
stored, quant none) and through each model under test: hearth's int4 at each --int4-block (and
MatMulNBits accuracy_level: 4 = int8 activations, the default; 0 = fp32; and the embedding and
lm_head at --vocab-bits; --int4-zero-points yes: asymmetric, a uint4 zero point per block), and
each --against checkpoint (a GGUF is dequantized as llama.cpp stores it and run in fp32). Prints,
per model: perplexity, KL(fp32 ‖ model) mean ± stderr, median, p99, max (nats), and top-1
agreement with the reference.`;

interface Candidate {
  readonly label: string;
  readonly engine: ShardEngine;
  readonly meter: QualityMeter;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      text: { type: 'string' },
      quant: { type: 'string', default: 'int4' },
      'int4-block': { type: 'string' },
      'accuracy-level': { type: 'string' },
      'vocab-bits': { type: 'string' },
      'int4-zero-points': { type: 'string' },
      against: { type: 'string', multiple: true },
      tokens: { type: 'string', default: '512' },
      chunk: { type: 'string', default: '128' },
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (values.model === undefined || values.text === undefined) throw new HearthError('HEARTH_ERR_USAGE', ['--model and --text are required']);
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new HearthError('HEARTH_ERR_USAGE', [`--${name} must be an integer ≥ ${min}; got "${v}"`]);
    return n;
  };
  if (values.quant !== 'int4' && values.quant !== 'none') throw new HearthError('HEARTH_ERR_USAGE', [`--quant must be int4 or none; got "${values.quant}"`]);
  const blocks = values['int4-block'] === undefined ? [undefined] : values['int4-block'].split(',').map((b) => int('int4-block', b.trim(), 16));
  const levels = values['accuracy-level'] === undefined ? [undefined] : values['accuracy-level'].split(',').map((b) => int('accuracy-level', b.trim(), 0));
  const vocabs = values['vocab-bits'] === undefined ? [undefined] : values['vocab-bits'].split(',').map((b) => {
    const n = int('vocab-bits', b.trim(), 4);
    if (n !== 4 && n !== 8) throw new HearthError('HEARTH_ERR_USAGE', [`--vocab-bits takes 4 and/or 8; got "${b}"`]);
    return n as 4 | 8;
  });
  const zeroPoints = values['int4-zero-points'] === undefined ? [undefined] : values['int4-zero-points'].split(',').map((v) => {
    const x = v.trim();
    if (x === 'yes' || x === '' || x === '1') return true;
    if (x === 'no' || x === '0') return false;
    throw new HearthError('HEARTH_ERR_USAGE', [`--int4-zero-points takes yes and/or no; got "${v}"`]);
  });
  const maxTokens = int('tokens', values.tokens, 2);
  const chunk = int('chunk', values.chunk, 1);
  const threads = values.threads === undefined ? 1 : int('threads', values.threads, 1);
  if (!fs.existsSync(values.text)) throw new HearthError('HEARTH_ERR_USAGE', [`--text ${values.text}: no such file`]);

  const dir = await resolveOrPullModel(values.model);
  const ckpt = openCheckpoint(dir);
  const config = ckpt.config;
  ckpt.close();
  const tokenizer = await loadTokenizer(dir);
  const ids = tokenizer.encode(fs.readFileSync(values.text, 'utf8'), { addSpecialTokens: true });
  const tokens = ids.slice(0, Math.min(maxTokens, config.maxPositions));
  if (tokens.length < 2) throw new HearthError('HEARTH_ERR_USAGE', [`--text has ${tokens.length} token(s); at least 2 are needed`]);
  if (tokens.some((t) => t >= config.vocabSize)) throw new HearthError('HEARTH_ERR_USAGE', [`the tokenizer gives ids past the model's vocabulary (${config.vocabSize})`]);

  const spec = { start: 0, end: config.numLayers, threads, provider: 'cpu' as const };
  const engines: ShardEngine[] = [];
  try {
    const ref = await createShardEngine(dir, { ...spec, quant: 'none' });
    engines.push(ref);
    const cands: Candidate[] = [];
    const add = (label: string, engine: ShardEngine): void => {
      engines.push(engine);
      cands.push({ label, engine, meter: new QualityMeter() });
    };
    if (values.quant === 'int4') {
      for (const zp of zeroPoints) {
        for (const vocab of vocabs) {
          for (const level of levels) {
            for (const block of blocks) {
              const e = await createShardEngine(dir, { ...spec, quant: 'int4' }, {
                ...(block === undefined ? {} : { int4Block: block }),
                ...(level === undefined ? {} : { accuracyLevel: level }),
                ...(vocab === undefined ? {} : { vocabBits: vocab }),
                ...(zp === undefined ? {} : { int4ZeroPoints: zp }),
              });
              const how = [
                block === undefined ? 'default block' : `block ${block}`,
                ...(vocab === undefined ? [] : [`embedding/head ${vocab}-bit`]),
                ...(zp === undefined ? [] : [zp ? 'zero points' : 'symmetric']),
                ...(level === undefined ? [] : [`accuracy_level ${level}`]),
              ];
              add(`hearth int4 (${how.join(', ')})`, e);
            }
          }
        }
      }
    }
    for (const other of values.against ?? []) {
      const odir = await resolveOrPullModel(other);
      const oc = openCheckpoint(odir);
      const same = oc.config.vocabSize === config.vocabSize && oc.config.numLayers === config.numLayers && oc.config.hiddenSize === config.hiddenSize;
      oc.close();
      if (!same) throw new HearthError('HEARTH_ERR_USAGE', [`--against ${other} is not the same model shape as --model`]);
      add(other, await createShardEngine(odir, { ...spec, quant: 'none' }));
    }
    if (cands.length === 0) throw new HearthError('HEARTH_ERR_USAGE', ['nothing to compare: use --quant int4 and/or --against']);
    // The reference first (its logits for the whole text are kept: tokens × vocab floats), then each
    // model under test against it, chunk by chunk.
    const V = config.vocabSize;
    const refChunks = new Map<number, Float32Array>();
    await teacherForced([ref], tokens, chunk, (first, logits) => refChunks.set(first, logits));
    for (const c of cands) {
      await teacherForced([c.engine], tokens, chunk, (first, logits) => {
        const r = refChunks.get(first) as Float32Array;
        const rows = logits.length / V;
        for (let i = 0; i < rows; i++) {
          const pos = first + i;
          if (pos + 1 >= tokens.length) break;
          c.meter.add(r.subarray(i * V, (i + 1) * V), logits.subarray(i * V, (i + 1) * V), tokens[pos + 1] as number);
        }
      });
    }
    const rows = cands.map((c) => ({ model: c.label, ...c.meter.figures() }));
    if (values.json) process.stdout.write(JSON.stringify({ model: values.model, text: values.text, tokens: tokens.length, rows }, null, 2) + '\n');
    else process.stdout.write(table(values.model, tokens.length, rows) + '\n');
    return 0;
  } finally {
    await Promise.all(engines.map((e) => e.close()));
  }
}

function table(model: string, n: number, rows: readonly (QualityFigures & { model: string })[]): string {
  const f = (x: number, d = 4): string => x.toFixed(d);
  const out = [`${model}: ${n} tokens, fp32 perplexity ${f(rows[0]?.pplRef ?? NaN)}`, '| model | PPL | mean KL ± stderr | median KL | p99 KL | max KL | same top-1 |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) out.push(`| ${r.model} | ${f(r.ppl)} | ${f(r.klMean, 5)} ± ${f(r.klStderr, 5)} | ${f(r.klMedian, 5)} | ${f(r.klP99, 5)} | ${f(r.klMax, 5)} | ${(100 * r.top1).toFixed(1)}% |`);
  return out.join('\n');
}
