// Checkpoint reading: every bad-checkpoint case gets a one-line HearthError naming the file and the
// tensor; f16/bf16/sharded copies read back as the f32 original within dtype precision; the
// generator is byte-for-byte deterministic; configs of each family normalise as transformers reads them.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { isHearthError } from '../src/errors/index.ts';
import { f32ToBf16Bits, f32ToF16Bits } from '../src/model/safetensors.ts';
import { generateCheckpoint, openCheckpoint, SafetensorsWriter, toFloat32, type Checkpoint, type GenerateOptions, type TensorSpec } from '../src/model/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stories = path.resolve(repoRoot, '../shared/models/stories260k');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-model-ckpt-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A small generated checkpoint (vocab 256, no tokenizer files) in a fresh folder. */
async function gen(opts: GenerateOptions = {}): Promise<string> {
  const dir = path.join(tmp, `m${n++}`);
  await generateCheckpoint(dir, { vocabSize: 256, tokenizer: false, ...opts });
  return dir;
}

/** Raw safetensors header of a file, parsed independently of src/model. */
function rawHeader(file: string): { len: number; json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> } {
  const buf = fs.readFileSync(file);
  const len = Number(buf.readBigUInt64LE(0));
  const json = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, never>;
  delete (json as Record<string, unknown>)['__metadata__'];
  return { len, json };
}

/** Rewrites dir/model.safetensors through `edit`, which may drop (null) or reshape tensors. */
function rewrite(dir: string, edit: (spec: TensorSpec, data: Float32Array) => [TensorSpec, Float32Array] | null): void {
  const ck = openCheckpoint(dir);
  const file = path.join(dir, 'model.safetensors');
  const items: [TensorSpec, Float32Array][] = [];
  for (const name of Object.keys(rawHeader(file).json)) {
    const info = ck.info(name);
    const r = edit({ name, dtype: info.dtype, shape: info.shape }, ck.read(name));
    if (r) items.push(r);
  }
  ck.close();
  const w = new SafetensorsWriter(file, items.map(([s]) => s));
  for (const [s, d] of items) w.write(s.name, d);
  w.close();
}

/** Bitwise equality of two fp32 arrays (tap's deep equality is slow on large typed arrays). */
function sameF32(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Runs fn, expecting a HearthError with exactly this (single-line) message or one matching the regex. */
function throwsMsg(t: Test, fn: () => unknown, want: string | RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (e) {
    t.ok(isHearthError(e), `${what}: HearthError (${(e as Error).name})`);
    const msg = (e as Error).message;
    t.notOk(msg.includes('\n'), `${what}: one line`);
    if (typeof want === 'string') t.equal(msg, want, what);
    else t.match(msg, want, what);
  }
}

t.test('bad checkpoints: one-line messages naming file and tensor', async (t) => {
  // Unsupported or missing model_type.
  const a = await gen({ preset: 'tiny-llama' });
  const cfgPath = path.join(a, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: 'gpt2' }));
  throwsMsg(t, () => openCheckpoint(a), 'config.json: model_type "gpt2" is not supported; supported: llama, qwen2, qwen3, mistral, qwen3_moe, mixtral', 'model_type gpt2');
  delete cfg['model_type'];
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  throwsMsg(t, () => openCheckpoint(a), 'config.json: model_type null is not supported; supported: llama, qwen2, qwen3, mistral, qwen3_moe, mixtral', 'no model_type');

  // config.json that is not JSON, or asks for what hearth does not run.
  fs.writeFileSync(cfgPath, '{"model_type": "llama",');
  throwsMsg(t, () => openCheckpoint(a), /^config\.json: not valid JSON \(.*\)$/, 'config not JSON');
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: 'llama', rope_scaling: { rope_type: 'yarn', factor: 4 } }));
  throwsMsg(t, () => openCheckpoint(a), 'config.json: rope_scaling type "yarn" is not supported; supported: llama3, linear, default', 'yarn');
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: 'llama', hidden_act: 'gelu' }));
  throwsMsg(t, () => openCheckpoint(a), 'config.json: hidden_act "gelu" is not supported; supported: silu', 'gelu');
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: 'llama', num_key_value_heads: 3 }));
  throwsMsg(t, () => openCheckpoint(a), 'config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)', 'kv heads');

  // No folder at all.
  throwsMsg(t, () => openCheckpoint(path.join(tmp, 'nope')), /^no checkpoint at .*nope: expected a folder with config\.json and \*\.safetensors$/, 'missing folder');

  // A missing tensor.
  const b = await gen({ preset: 'tiny-llama' });
  rewrite(b, (s, d) => (s.name === 'model.layers.2.self_attn.k_proj.weight' ? null : [s, d]));
  throwsMsg(t, () => openCheckpoint(b), 'model.safetensors: tensor model.layers.2.self_attn.k_proj.weight is missing', 'missing tensor');
  // …which a stage that does not need layer 2 does not care about.
  t.ok(openCheckpoint(b, { range: [0, 2] }), 'range [0,2) opens without layer 2');
  throwsMsg(t, () => openCheckpoint(b, { range: [2, 4] }), 'model.safetensors: tensor model.layers.2.self_attn.k_proj.weight is missing', 'range [2,4)');

  // A shape mismatch (HF Linear is [out, in]: up_proj is [intermediate, hidden]).
  const c = await gen({ preset: 'tiny-llama' });
  rewrite(c, (s, d) => (s.name === 'model.layers.3.mlp.up_proj.weight' ? [{ ...s, shape: [64, 64] }, d.subarray(0, 64 * 64)] : [s, d]));
  throwsMsg(t, () => openCheckpoint(c), 'model.safetensors: tensor model.layers.3.mlp.up_proj.weight has shape [64,64], expected [160,64]', 'shape mismatch');

  // qwen2 needs q/k/v biases although its config.json says nothing about them.
  const q2 = await gen({ preset: 'tiny-qwen2' });
  rewrite(q2, (s, d) => (s.name === 'model.layers.0.self_attn.v_proj.bias' ? null : [s, d]));
  throwsMsg(t, () => openCheckpoint(q2), 'model.safetensors: tensor model.layers.0.self_attn.v_proj.bias is missing', 'qwen2 bias');

  // An unknown dtype: relabel model.norm.weight as I32 (same byte count, so only the dtype is wrong).
  const d = await gen({ preset: 'tiny-qwen3' });
  const file = path.join(d, 'model.safetensors');
  const buf = fs.readFileSync(file);
  const len = Number(buf.readBigUInt64LE(0));
  const header = buf.subarray(8, 8 + len).toString('utf8');
  const relabeled = header.replace(/("model\.norm\.weight":\{"dtype":)"F32"/, '$1"I32"');
  t.not(relabeled, header, 'header edited');
  fs.writeFileSync(file, Buffer.concat([buf.subarray(0, 8), Buffer.from(relabeled), buf.subarray(8 + len)]));
  throwsMsg(t, () => openCheckpoint(d), 'model.safetensors: tensor model.norm.weight has dtype I32; supported: F32, F16, BF16', 'unknown dtype');

  // A header that is not JSON.
  const e = await gen({ preset: 'tiny-qwen3' });
  const ef = path.join(e, 'model.safetensors');
  const eb = fs.readFileSync(ef);
  eb.write('{not json', 8, 'utf8');
  fs.writeFileSync(ef, eb);
  throwsMsg(t, () => openCheckpoint(e), /^model\.safetensors: header is not valid JSON \(.*\)$/, 'header not JSON');

  // A header length that runs past the end of the file.
  const g = await gen({ preset: 'tiny-qwen3' });
  const gf = path.join(g, 'model.safetensors');
  fs.writeFileSync(gf, Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0]), Buffer.from('{}')]));
  throwsMsg(t, () => openCheckpoint(g), 'model.safetensors: header length 16777215 runs past the end of the file (10 bytes)', 'header too long');

  // A truncated file: the last tensor's data ends past the end.
  const f = await gen({ preset: 'tiny-mistral' });
  const ff = path.join(f, 'model.safetensors');
  const { len: flen, json } = rawHeader(ff);
  const [lastName, last] = Object.entries(json).sort((x, y) => y[1].data_offsets[1] - x[1].data_offsets[1])[0]!;
  const size = fs.statSync(ff).size;
  fs.truncateSync(ff, size - 10);
  throwsMsg(
    t,
    () => openCheckpoint(f),
    `model.safetensors: tensor ${lastName} data ends at byte ${8 + flen + last.data_offsets[1]} but the file has only ${size - 10} bytes (truncated?)`,
    'truncated',
  );

  // A shard the index names but the folder lacks.
  const s = await gen({ preset: 'tiny-llama', shards: 3 });
  fs.rmSync(path.join(s, 'model-00002-of-00003.safetensors'));
  const index = JSON.parse(fs.readFileSync(path.join(s, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const inShard2 = Object.keys(index.weight_map).find((k) => index.weight_map[k] === 'model-00002-of-00003.safetensors')!;
  throwsMsg(t, () => openCheckpoint(s), /^model-00002-of-00003\.safetensors: tensor \S+ \(file not present\) is missing$/, 'missing shard');
  t.ok(inShard2, 'shard 2 held tensors');

  // A range outside the model.
  const r = await gen({ preset: 'tiny-qwen3' });
  throwsMsg(t, () => openCheckpoint(r, { range: [2, 5] }), "config.json: layer range [2, 5) is outside the model's 4 layers", 'bad range');
});

t.test('a partial folder (one stage\'s tensors) opens for its range only', async (t) => {
  const dir = await gen({ preset: 'tiny-llama', shards: 2 });
  const full = openCheckpoint(dir);
  const names = full.tensorsForRange(1, 3);
  const part = path.join(tmp, 'partial');
  fs.mkdirSync(part);
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors.index.json']) fs.copyFileSync(path.join(dir, f), path.join(part, f));
  const specs = names.map((nm) => ({ name: nm, dtype: full.info(nm).dtype, shape: full.info(nm).shape }));
  const w = new SafetensorsWriter(path.join(part, 'model.safetensors'), specs);
  for (const nm of names) w.write(nm, full.read(nm));
  w.close();
  const ck = openCheckpoint(part, { range: [1, 3] });
  for (const nm of names) t.ok(sameF32(ck.read(nm), full.read(nm)), nm);
  throwsMsg(t, () => openCheckpoint(part, { range: [0, 3] }), /^model-0000[12]-of-00002\.safetensors: tensor model\.embed_tokens\.weight \(file not present\) is missing$/, 'stage 0 needs the embedding');
  ck.close();
  full.close();
});

t.test('f16, bf16 and sharded copies read back as the f32 original', async (t) => {
  const base: GenerateOptions = { preset: 'tiny-qwen2', seed: 5 };
  const f32 = openCheckpoint(await gen(base));
  const copies: [string, Checkpoint, number][] = [
    ['sharded f32', openCheckpoint(await gen({ ...base, shards: 4 })), 0],
    ['f16', openCheckpoint(await gen({ ...base, dtype: 'f16' })), 2 ** -11],
    ['bf16', openCheckpoint(await gen({ ...base, dtype: 'bf16' })), 2 ** -8],
    ['sharded bf16', openCheckpoint(await gen({ ...base, dtype: 'bf16', shards: 3 })), 2 ** -8],
  ];
  t.equal(fs.readdirSync(path.dirname(copies[0]![1].info('model.norm.weight').file)).filter((f) => f.endsWith('.safetensors')).length, 4, '4 shards written');
  const names = f32.tensorsForRange(0, f32.config.numLayers);
  for (const [label, ck, rel] of copies) {
    t.same(ck.config, f32.config, `${label}: same config`);
    let worst = 0;
    for (const nm of names) {
      const a = f32.read(nm);
      const b = ck.read(nm);
      if (a.length !== b.length) t.fail(`${label} ${nm} length`);
      for (let i = 0; i < a.length; i++) {
        // Relative rounding error of the dtype (half an ulp), plus f16's subnormal spacing.
        const err = Math.abs(a[i]! - b[i]!) / (Math.abs(a[i]!) * rel + 2 ** -24 + (rel === 0 ? Number.MIN_VALUE : 0));
        if (err > worst) worst = err;
      }
    }
    t.ok(worst <= 1, `${label}: worst error ${worst.toFixed(3)} of the dtype's rounding bound`);
  }
  t.equal(copies[1]![1].info('model.norm.weight').dtype, 'F16');
  t.equal(copies[2]![1].info('model.norm.weight').dtype, 'BF16');
  // read() returns a fresh array each time.
  const x = f32.read('model.norm.weight');
  x[0] = 1234;
  t.not(f32.read('model.norm.weight')[0], 1234, 'read() is a fresh copy');
  for (const [, ck] of copies) ck.close();
  f32.close();
});

t.test('f16/bf16 conversions round to nearest even at the edges', async (t) => {
  const h = (x: number): number => f32ToF16Bits(x);
  t.equal(h(1), 0x3c00);
  t.equal(h(-2), 0xc000);
  t.equal(h(65504), 0x7bff, 'largest half');
  t.equal(h(65520), 0x7c00, 'rounds up to Inf');
  t.equal(h(2 ** -24), 0x0001, 'smallest subnormal');
  t.equal(h(2 ** -25), 0x0000, 'tie to even (zero)');
  t.equal(h(3 * 2 ** -25), 0x0002, 'tie to even (two)');
  t.equal(h(1 + 2 ** -11), 0x3c00, 'tie to even, down');
  t.equal(h(1 + 3 * 2 ** -11), 0x3c02, 'tie to even, up');
  t.equal(f32ToBf16Bits(1), 0x3f80);
  t.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80, 'bf16 tie down');
  t.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82, 'bf16 tie up');
  const u16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3555]);
  t.same(Array.from(toFloat32(new Uint8Array(u16.buffer), 'F16')), [1, -2, 65504, 2 ** -24, Infinity, 0.333251953125]);
  const b16 = new Uint16Array([0x3f80, 0xc040, 0x3eab]);
  t.same(Array.from(toFloat32(new Uint8Array(b16.buffer), 'BF16')), [1, -3, 0.333984375]);
});

const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

t.test('the generator is deterministic', async (t) => {
  const opts: GenerateOptions = { preset: 'tiny-llama', seed: 42, dtype: 'bf16', shards: 2 };
  const a = await gen(opts);
  const b = await gen(opts);
  const files = fs.readdirSync(a).sort();
  t.same(fs.readdirSync(b).sort(), files);
  for (const f of files) t.equal(sha(path.join(a, f)), sha(path.join(b, f)), `${f} identical`);
  const c = await gen({ ...opts, seed: 43 });
  t.not(sha(path.join(c, 'model-00001-of-00002.safetensors')), sha(path.join(a, 'model-00001-of-00002.safetensors')), 'another seed, other weights');
  await t.rejects(generateCheckpoint(path.join(tmp, 'x'), { dtype: 'f8' as 'f32' }), { message: 'generate checkpoint: unknown dtype f8; choose f32, f16 or bf16' });
  await t.rejects(generateCheckpoint(path.join(tmp, 'x'), { seed: Number('abc') }), { message: 'generate checkpoint: seed must be an integer in [0, 2^32), got NaN' });
  await t.rejects(generateCheckpoint(path.join(tmp, 'x'), { preset: 'tiny-qwen2', headDim: 8 }), { message: /qwen2 needs hiddenSize == numHeads \* headDim/ });
});

t.test('configs of each family normalise as transformers reads them', async (t) => {
  const llama = openCheckpoint(await gen({ preset: 'tiny-llama' }));
  t.same(llama.config.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  t.equal(llama.config.tieEmbeddings, false);
  t.ok(llama.has('lm_head.weight'));
  t.same(llama.tensorsForRange(3, 4).slice(-2), ['model.norm.weight', 'lm_head.weight'], 'untied last stage reads lm_head');
  t.equal(llama.tensorsForRange(1, 3).filter((x) => !x.startsWith('model.layers.')).length, 0, 'middle stage: layers only');
  t.equal(llama.tensorsForRange(0, 1)[0], 'model.embed_tokens.weight');

  const q2dir = await gen({ preset: 'tiny-qwen2' });
  const raw = JSON.parse(fs.readFileSync(path.join(q2dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.notOk('attention_bias' in raw, 'qwen2 config has no attention_bias key');
  t.notOk('head_dim' in raw, 'qwen2 config has no head_dim key');
  const q2 = openCheckpoint(q2dir);
  t.equal(q2.config.attentionBias, true, 'qwen2 implies bias');
  t.equal(q2.config.headDim, 16, 'head_dim = hidden / heads');
  t.equal(q2.config.tieEmbeddings, true);
  t.same(q2.tensorsForRange(3, 4).slice(-2), ['model.norm.weight', 'model.embed_tokens.weight'], 'tied last stage reads embed_tokens');
  t.same(q2.config.eosTokenIds, [151645, 151643], 'eos from config + generation_config');

  const q3 = openCheckpoint(await gen({ preset: 'tiny-qwen3', headDim: 8, numHeads: 4 }));
  t.equal(q3.config.headDim, 8, 'explicit head_dim (not hidden / heads)');
  t.equal(q3.config.qkNorm, true);
  t.same(q3.info('model.layers.0.self_attn.q_norm.weight').shape, [8]);
  t.same(q3.info('model.layers.0.self_attn.q_proj.weight').shape, [32, 64]);

  const mi = openCheckpoint(await gen({ preset: 'tiny-mistral' }));
  t.equal(mi.config.family, 'mistral');
  t.equal(mi.config.attentionBias, false);

  // Tokenizer files are the real Qwen3 ones, with the tool-aware chat template.
  const withTok = path.join(tmp, 'tok');
  await generateCheckpoint(withTok, { preset: 'tiny-qwen3', vocabSize: 512, numLayers: 1 });
  const tc = JSON.parse(fs.readFileSync(path.join(withTok, 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
  t.match(tc.chat_template, /tools/, 'chat template handles tools');
  const tj = JSON.parse(fs.readFileSync(path.join(withTok, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: { id: number }[] };
  const maxId = [...Object.values(tj.model.vocab), ...tj.added_tokens.map((x) => x.id)].reduce((a, b) => Math.max(a, b), 0);
  t.equal(maxId, 511, `tokenizer ids (max ${maxId}) are cut to the model's vocab of 512`);
});

t.test('stories260k opens with its config', { skip: fs.existsSync(path.join(stories, 'config.json')) ? false : 'stories260k absent' }, async (t) => {
  const ck = openCheckpoint(stories);
  const raw = JSON.parse(fs.readFileSync(path.join(stories, 'config.json'), 'utf8')) as Record<string, number>;
  t.match(ck.config, { family: 'llama', hiddenSize: raw['hidden_size'], numLayers: raw['num_hidden_layers'], numHeads: raw['num_attention_heads'], numKvHeads: raw['num_key_value_heads'], headDim: 8, vocabSize: 512, tieEmbeddings: true, bosTokenId: 1 });
  t.same(ck.config.eosTokenIds, [2, 1]);
  t.same(ck.info('model.embed_tokens.weight').shape, [512, 64]);
  ck.close();
});

t.test('tensors past the 2 GB mark of a file read correctly', async (t) => {
  // A sparse file: a never-read 2.4 GB filler tensor first, so every real tensor lies past 2^31.
  const src = openCheckpoint(await gen({ preset: 'tiny-qwen3', numLayers: 1 }));
  const dir = path.join(tmp, 'big');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(src.dir, 'config.json'), path.join(dir, 'config.json'));
  const filler = 600_000_000 * 4;
  const names = src.tensorsForRange(0, 1);
  const header: Record<string, unknown> = { filler: { dtype: 'F32', shape: [600_000_000], data_offsets: [0, filler] } };
  let off = filler;
  for (const nm of names) {
    const bytes = src.info(nm).byteEnd - src.info(nm).byteStart;
    header[nm] = { dtype: 'F32', shape: src.info(nm).shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const hb = Buffer.from(JSON.stringify(header));
  const lb = Buffer.alloc(8);
  lb.writeBigUInt64LE(BigInt(hb.length));
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  try {
    fs.writeSync(fd, lb, 0, 8, 0);
    fs.writeSync(fd, hb, 0, hb.length, 8);
    let pos = 8 + hb.length + filler;
    for (const nm of names) {
      const d = src.read(nm);
      fs.writeSync(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength), 0, d.byteLength, pos);
      pos += d.byteLength;
    }
  } catch (e) {
    fs.closeSync(fd);
    t.comment(`skipped: cannot write a sparse 2.4 GB file here: ${(e as Error).message}`);
    return;
  }
  fs.closeSync(fd);
  const big = openCheckpoint(dir);
  t.ok(big.info('model.norm.weight').byteStart > 2 ** 31, 'offsets past 2^31');
  for (const nm of names) t.ok(sameF32(big.read(nm), src.read(nm)), nm);
  big.close();
  src.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
