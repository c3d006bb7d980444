// The GGUF writer: ggml's encodings byte for byte, a file whose header, metadata and tensor table
// parse back, Q4_0/Q8_0 blocks within their rounding error of the source, llama's q/k row order,
// and (when ../../../shared/models/tinystories-656k is here) llama.cpp itself reproducing the
// checkpoint's published greedy story from an f32 GGUF. Run: npm test (in this folder).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readGguf, readTensorBytes } from '../src/gguf-file.ts';
import { decode, encode, fromHalf, GGML, toHalf } from '../src/ggml-quant.ts';
import { convertCheckpoint } from '../src/hf-to-gguf.ts';
import type { Token as llamaCppToken } from 'node-llama-cpp';

const here = path.dirname(fileURLToPath(import.meta.url));

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32 - 0.5;
  };
}

test('f16: exact values, round to nearest even, subnormals, overflow', () => {
  assert.equal(toHalf(1), 0x3c00);
  assert.equal(toHalf(-2), 0xc000);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(1e6), 0x7c00);
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even mantissa');
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(toHalf(2 ** -24), 0x0001, 'smallest subnormal');
  assert.equal(toHalf(2 ** -26), 0, 'below half the smallest subnormal');
  for (const h of [0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0xbc00]) assert.equal(toHalf(fromHalf(h)), h);
});

test('Q4_0 and Q8_0 blocks: the bytes ggml writes', () => {
  // Largest magnitude is -8, so d = 1 and q = trunc(x + 8.5): -8 → 0 … 7 → 15.
  const x = Float32Array.from({ length: 32 }, (_, j) => (j < 16 ? j - 8 : (j - 24) / 2));
  const q4 = new Uint8Array(18);
  encode(GGML.Q4_0, x, q4);
  assert.equal(q4[0]! | (q4[1]! << 8), toHalf(1));
  for (let j = 0; j < 16; j++) assert.equal(q4[2 + j], j | (Math.min(15, Math.trunc((j - 8) / 2 + 8.5)) << 4), `byte ${j}`);
  assert.deepEqual([...decode(GGML.Q4_0, q4, 32)].slice(0, 16), [...x].slice(0, 16));

  const q8 = new Uint8Array(34);
  encode(GGML.Q8_0, x, q8);
  const d = Math.fround(8 / 127);
  assert.equal(q8[0]! | (q8[1]! << 8), toHalf(d));
  assert.equal(new Int8Array(q8.buffer, 2, 32)[0], -127);
});

/** A tiny checkpoint folder: config, tokenizer and f32 safetensors, for `family`. */
function tinyCheckpoint(family: 'qwen2' | 'llama'): { dir: string; tensors: Map<string, Float32Array> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gguf-${family}-`));
  const [hidden, inter, layers, heads, kvHeads, vocab] = [64, 96, 2, 4, 2, 48];
  const hd = hidden / heads;
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ model_type: family, hidden_size: hidden, intermediate_size: inter, num_hidden_layers: layers, num_attention_heads: heads, num_key_value_heads: kvHeads, vocab_size: vocab, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: family === 'qwen2', bos_token_id: 1, eos_token_id: 2 }),
  );
  const pieces = ['a', 'b', 'c', 'ab', 'abc', 'Ġ', 'Ġa'];
  const vocabMap = Object.fromEntries(pieces.map((p, i) => [p, i + 3]));
  fs.writeFileSync(
    path.join(dir, 'tokenizer.json'),
    JSON.stringify({
      model: { type: 'BPE', vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, ...vocabMap }, merges: [['a', 'b'], 'ab c', ['Ġ', 'a']], byte_fallback: family === 'llama', unk_token: '<unk>' },
      added_tokens: [{ id: 1, content: '<s>', special: true }, { id: 2, content: '</s>', special: true }, { id: 40, content: '<tool>', special: false }],
      pre_tokenizer: { type: 'ByteLevel' },
    }),
  );
  const next = rng(7);
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const put = (name: string, shape: number[]): void => {
    tensors.set(name, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next));
    shapes.set(name, shape);
  };
  put('model.embed_tokens.weight', [vocab, hidden]);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    put(p + 'input_layernorm.weight', [hidden]);
    put(p + 'post_attention_layernorm.weight', [hidden]);
    put(p + 'self_attn.q_proj.weight', [heads * hd, hidden]);
    put(p + 'self_attn.k_proj.weight', [kvHeads * hd, hidden]);
    put(p + 'self_attn.v_proj.weight', [kvHeads * hd, hidden]);
    put(p + 'self_attn.o_proj.weight', [hidden, heads * hd]);
    if (family === 'qwen2') for (const b of ['q', 'k', 'v']) put(`${p}self_attn.${b}_proj.bias`, [(b === 'q' ? heads : kvHeads) * hd]);
    put(p + 'mlp.gate_proj.weight', [inter, hidden]);
    put(p + 'mlp.up_proj.weight', [inter, hidden]);
    put(p + 'mlp.down_proj.weight', [hidden, inter]);
  }
  put('model.norm.weight', [hidden]);
  if (family === 'llama') put('lm_head.weight', [vocab, hidden]);
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: shapes.get(name), data_offsets: [off, off + t.byteLength] };
    off += t.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, json, ...[...tensors.values()].map((t) => Buffer.from(t.buffer))]));
  return { dir, tensors };
}

/** Largest |error| over 32-value blocks, relative to each block's step (amax / levels). */
function worstStepError(src: Float32Array, got: Float32Array, levels: number): number {
  let worst = 0;
  for (let b = 0; b < src.length; b += 32) {
    let amax = 0;
    for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(src[j]!));
    for (let j = b; j < b + 32; j++) worst = Math.max(worst, Math.abs(src[j]! - got[j]!) / (amax / levels));
  }
  return worst;
}

test('qwen2 (tied): header, metadata and tensor table parse back; blocks within rounding error', (t) => {
  const { dir, tensors } = tinyCheckpoint('qwen2');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'm.gguf');
  const r = convertCheckpoint(dir, out, 'q4_0');
  assert.equal(fs.statSync(out).size, r.bytes);
  const g = readGguf(out);
  assert.equal(g.version, 3);
  assert.equal(g.meta.get('general.architecture'), 'qwen2');
  assert.equal(g.meta.get('general.file_type'), 2);
  assert.equal(g.meta.get('qwen2.block_count'), 2);
  assert.equal(g.meta.get('qwen2.attention.head_count_kv'), 2);
  assert.equal(g.meta.get('qwen2.rope.dimension_count'), 16);
  assert.equal(g.meta.get('tokenizer.ggml.model'), 'gpt2');
  assert.equal(g.meta.get('tokenizer.ggml.pre'), 'qwen2');
  const tokens = g.meta.get('tokenizer.ggml.tokens') as string[];
  assert.equal(tokens.length, 48, 'padded to vocab_size');
  assert.equal(tokens[6], 'ab');
  assert.equal(tokens[41], '[PAD41]');
  const types = g.meta.get('tokenizer.ggml.token_type') as number[];
  assert.deepEqual([types[1], types[3], types[40], types[41]], [3, 1, 4, 5], 'control, normal, user-defined, unused');
  assert.deepEqual(g.meta.get('tokenizer.ggml.merges'), ['a b', 'ab c', 'Ġ a']);
  assert.equal(g.meta.get('tokenizer.ggml.bos_token_id'), 1);
  assert.equal(g.meta.get('tokenizer.ggml.add_bos_token'), false);

  const byName = new Map(g.tensors.map((x) => [x.name, x]));
  assert.equal(g.tensors.length, 1 + 2 * 12 + 1, 'embedding, 12 per layer (with q/k/v bias), final norm; no output.weight when tied');
  assert.equal(byName.get('token_embd.weight')?.type, GGML.Q8_0, 'the tied embedding is Q8_0');
  assert.deepEqual(byName.get('token_embd.weight')?.dims, [64, 48]);
  assert.equal(byName.get('blk.0.attn_q.weight')?.type, GGML.Q4_0);
  assert.deepEqual(byName.get('blk.1.ffn_down.weight')?.dims, [96, 64]);
  assert.equal(byName.get('blk.0.attn_norm.weight')?.type, GGML.F32);
  assert.equal(byName.get('blk.0.attn_k.bias')?.type, GGML.F32);
  for (const x of g.tensors) assert.equal(x.offset % 32, 0, `${x.name} is aligned`);

  const q = byName.get('blk.1.ffn_up.weight')!;
  const src = tensors.get('model.layers.1.mlp.up_proj.weight')!;
  const deq = decode(q.type, readTensorBytes(out, q), src.length);
  // One Q4_0 step is amax/8 (the extreme maps to -8); rounding is at most half a step, up to one
  // step on the clamped side; f16 rounding of the scale adds a little.
  assert.ok(worstStepError(src, deq, 8) <= 1.01, `Q4_0 within a step: ${worstStepError(src, deq, 8)}`);
  let se = 0;
  for (let i = 0; i < src.length; i++) se += (src[i]! - deq[i]!) ** 2;
  assert.ok(Math.sqrt(se / src.length) < 0.05 * 0.5, 'Q4_0 RMS error is a small share of the values');
  const e = byName.get('token_embd.weight')!;
  const emb = tensors.get('model.embed_tokens.weight')!;
  // Half a step, plus up to 127 × the f16 rounding of the scale (2^-11 relative) at the extremes.
  const q8err = worstStepError(emb, decode(e.type, readTensorBytes(out, e), emb.length), 127);
  assert.ok(q8err <= 0.5 + 127 * 2 ** -11, `Q8_0 within half a step: ${q8err}`);
  const bias = tensors.get('model.layers.0.self_attn.k_proj.bias')!;
  assert.deepEqual(decode(GGML.F32, readTensorBytes(out, byName.get('blk.0.attn_k.bias')!), bias.length), bias, 'biases are exact');
});

test('llama (untied): q/k rows reordered for interleaved rotary; SentencePiece-style tokenizer', (t) => {
  const { dir, tensors } = tinyCheckpoint('llama');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'm.gguf');
  convertCheckpoint(dir, out, 'f32');
  const g = readGguf(out);
  assert.equal(g.meta.get('general.architecture'), 'llama');
  assert.equal(g.meta.get('tokenizer.ggml.model'), 'llama');
  const scores = g.meta.get('tokenizer.ggml.scores') as number[];
  assert.deepEqual([scores[6], scores[7], scores[9]], [-0, -1, -2], 'a piece scores minus the rank of the merge that makes it');
  const byName = new Map(g.tensors.map((x) => [x.name, x]));
  assert.ok(byName.has('output.weight'), 'untied: its own output matrix');
  const hd = 16;
  for (const [name, src, heads] of [['attn_q', 'q_proj', 4], ['attn_k', 'k_proj', 2]] as const) {
    const w = tensors.get(`model.layers.0.self_attn.${src}.weight`)!;
    const got = decode(GGML.F32, readTensorBytes(out, byName.get(`blk.0.${name}.weight`)!), w.length);
    for (let h = 0; h < heads; h++)
      for (let r = 0; r < hd / 2; r++)
        for (let s = 0; s < 2; s++) {
          const to = (h * hd + 2 * r + s) * 64;
          const from = (h * hd + s * (hd / 2) + r) * 64;
          assert.deepEqual(got.subarray(to, to + 64), w.subarray(from, from + 64), `${name} head ${h} row ${2 * r + s}`);
        }
  }
  const v = tensors.get('model.layers.0.self_attn.v_proj.weight')!;
  assert.deepEqual(decode(GGML.F32, readTensorBytes(out, byName.get('blk.0.attn_v.weight')!), v.length), v, 'v keeps its row order');
});

const stories = path.resolve(here, '../../../../shared/models/tinystories-656k');
test('llama.cpp greedy on an f32 GGUF of tinystories-656k equals the published story', { skip: !fs.existsSync(stories) && 'no ../shared/models' }, async (t) => {
  let llamaCpp: typeof import('node-llama-cpp');
  try {
    llamaCpp = await import('node-llama-cpp');
  } catch {
    t.skip('node-llama-cpp is not installed (npm install in this folder)');
    return;
  }
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-stories-')), 'm.gguf');
  t.after(() => fs.rmSync(path.dirname(out), { recursive: true, force: true }));
  convertCheckpoint(stories, out, 'f32');
  const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', maxThreads: 1, logLevel: llamaCpp.LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: out });
  const ids = [model.tokens.bos!, ...model.tokenize('Once upon a time')];
  assert.deepEqual(ids as number[], [1, 80, 147, 201, 282, 57], 'llama.cpp tokenizes with the GGUF vocabulary as hearth does');
  const ctx = await model.createContext({ contextSize: 256, threads: 1 });
  const got: llamaCppToken[] = [];
  for await (const tok of ctx.getSequence().evaluate(ids, { temperature: 0 })) got.push(tok);
  const text = 'Once upon a time' + model.detokenize(got);
  await ctx.dispose();
  await model.dispose();
  assert.equal(text, fs.readFileSync(path.join(stories, 'greedy-once-upon-a-time.txt'), 'utf8').trimEnd());
});
