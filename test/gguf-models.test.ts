// GGUF files of the real checkpoints in ../shared/models (written by bench/llama-cpp's converter,
// as convert_hf_to_gguf.py lays them out) served directly: the tokenizer and chat template come from
// the GGUF's metadata alone, and F32/F16/Q8_0 files give the greedy text hearth gives on the
// original safetensors (llama.cpp's q/k row permutation undone). A split set and an Ollama store
// resolve to the same model.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { gguf } from '@huggingface/gguf';
import { convertCheckpoint, type Quant } from '../bench/llama-cpp/src/hf-to-gguf.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { loadServedModel, resolveGgufModel } from '../src/cli/served-model.ts';
import { isHearthError } from '../src/errors/index.ts';
import { openCheckpoint, referenceLogits } from '../src/model/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { greedy } from './helpers/nats.ts';
import { repoRoot } from './helpers/runtime-exact.ts';

const models = { stories260k: path.resolve(repoRoot, '../shared/models/stories260k'), 'tinystories-656k': path.resolve(repoRoot, '../shared/models/tinystories-656k') };
const skip = Object.values(models).every((d) => fs.existsSync(path.join(d, 'config.json'))) ? false : '../shared/models is absent';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-gguf-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
const home = path.join(work, 'state');

function ggufOf(name: keyof typeof models, quant: Quant): string {
  const out = path.join(work, `${name}-${quant}.gguf`);
  if (!fs.existsSync(out)) convertCheckpoint(models[name], out, quant);
  return out;
}

async function greedyOf(dir: string, prompt: readonly number[], n: number): Promise<number[]> {
  const m = await loadLocalModel(dir, { threads: 1 });
  try {
    return await greedy(m.pipeline, 's', Int32Array.from(prompt), n);
  } finally {
    await m.pipeline.close();
  }
}

const TEXTS = ['Once upon a time', 'Lily and Tom went to the park. "Look!" she said, 123 times.', ' two  spaces\nand a newline', 'ünïcode → bytes'];

t.test('F32, F16 and Q8_0 GGUFs: same tokenizer, same greedy text as the safetensors', { skip }, async (t) => {
  for (const name of Object.keys(models) as (keyof typeof models)[]) {
    const orig = models[name];
    const tok0 = await loadTokenizer(orig);
    const prompt = tok0.encode('Once upon a time', { addSpecialTokens: true });
    const want = await greedyOf(orig, prompt, 24);
    for (const quant of ['f32', 'f16', 'q8_0'] as const) {
      const dir = await resolveGgufModel(ggufOf(name, quant), home);
      if (dir === null) throw new Error('not resolved');
      const tok = await loadTokenizer(dir);
      for (const text of TEXTS) {
        const ids = tok.encode(text, { addSpecialTokens: true });
        t.same(ids, tok0.encode(text, { addSpecialTokens: true }), `${name} ${quant}: ${JSON.stringify(text)} tokenizes as tokenizer.json does`);
        t.equal(tok.decode(ids, { skipSpecialTokens: true }), tok0.decode(ids, { skipSpecialTokens: true }), `${name} ${quant}: and decodes back the same`);
      }
      t.equal(tok.bosTokenId, tok0.bosTokenId, `${name} ${quant}: bos`);
      // GGUF holds one eos id (convert_hf_to_gguf writes config.json's first); generation_config
      // may list more (stories260k: [2, 1]).
      t.ok(tok.eosTokenIds.length === 1 && tok0.eosTokenIds.includes(tok.eosTokenIds[0] as number), `${name} ${quant}: eos ${JSON.stringify(tok.eosTokenIds)} is the checkpoint's`);
      const got = await greedyOf(dir, prompt, 24);
      const at = got.findIndex((x, i) => x !== want[i]);
      if (quant !== 'q8_0' || at < 0) {
        t.same(got, want, `${name} ${quant}: greedy "${tok.decode(got, { skipSpecialTokens: true })}"`);
        continue;
      }
      // Q8_0 is 8-bit rounding of the weights: it may flip a near-tie, nothing more. Where the
      // text first differs, the safetensors' own top two must be within 0.1 logit.
      const logits = referenceLogits(openCheckpoint(orig), [...prompt, ...want.slice(0, at)]).at(-1) as Float32Array;
      const margin = (logits[want[at] as number] as number) - (logits[got[at] as number] as number);
      t.ok(margin >= 0 && margin < 0.1, `${name} q8_0: greedy equal for ${at} tokens, then a near-tie (safetensors' margin ${margin.toFixed(4)}) flips: "${tok.decode(got, { skipSpecialTokens: true })}"`);
    }
  }
});

t.test('the chat template comes from tokenizer.chat_template', { skip }, async (t) => {
  const dir = await resolveGgufModel(ggufOf('tinystories-656k', 'q8_0'), home);
  const { model } = await loadServedModel(dir as string, null, null);
  const want = JSON.parse(fs.readFileSync(path.join(models['tinystories-656k'], 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
  t.equal(model.templateSource, want.chat_template, 'the jinja source is the checkpoint\'s');
  t.ok(path.basename(dir as string).endsWith((await sha256(ggufOf('tinystories-656k', 'q8_0'))).slice(0, 16)), `the folder ${path.basename(dir as string)} is named by the GGUF's digest`);
  t.equal(model.id, 'tinystories-656k-q8_0', 'the model is served under the file\'s name');
});

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Rewrites one GGUF as a gguf-split style set of two shards (each a whole GGUF; metadata on both). */
async function splitInTwo(file: string, prefix: string): Promise<string[]> {
  fs.mkdirSync(path.dirname(prefix), { recursive: true });
  const parsed = await gguf(file, { allowLocalFile: true });
  const src = fs.readFileSync(file);
  const metaBytes = src.subarray(24, parsed.tensorInfoByteRange[0]);
  const half = Math.ceil(parsed.tensorInfos.length / 2);
  const parts = [parsed.tensorInfos.slice(0, half), parsed.tensorInfos.slice(half)];
  const base = Number(parsed.tensorDataOffset);
  const sorted = [...parsed.tensorInfos].sort((a, b) => Number(a.offset - b.offset));
  const end = (ti: (typeof sorted)[number]): number => {
    const next = sorted[sorted.indexOf(ti) + 1];
    return next === undefined ? src.length - base : Number(next.offset);
  };
  const files: string[] = [];
  parts.forEach((infos, i) => {
    const chunks: Buffer[] = [];
    const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
    const u64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
    chunks.push(u32(0x46554747), u32(3), u64(infos.length), u64(Number(parsed.metadata.kv_count)), metaBytes);
    const datas: Buffer[] = [];
    let off = 0;
    for (const ti of infos) {
      const name = Buffer.from(ti.name);
      chunks.push(u64(name.length), name, u32(ti.shape.length), ...ti.shape.map((d) => u64(Number(d))), u32(ti.dtype), u64(off));
      let data = src.subarray(base + Number(ti.offset), base + end(ti));
      data = Buffer.concat([data, Buffer.alloc((32 - (data.length % 32)) % 32)]);
      datas.push(data);
      off += data.length;
    }
    let head = Buffer.concat(chunks);
    head = Buffer.concat([head, Buffer.alloc((32 - (head.length % 32)) % 32)]);
    const out = `${prefix}-0000${i + 1}-of-00002.gguf`;
    fs.writeFileSync(out, Buffer.concat([head, ...datas]));
    files.push(out);
  });
  return files;
}

t.test('a split set (-00001-of-00002.gguf) is one model', { skip }, async (t) => {
  const single = ggufOf('stories260k', 'q8_0');
  const shards = await splitInTwo(single, path.join(work, 'split', 'stories'));
  const dir = await resolveGgufModel(shards[0] as string, home);
  const marker = JSON.parse(fs.readFileSync(path.join(dir as string, 'hearth-gguf.json'), 'utf8')) as { tensors: { file: string }[] };
  t.same([...new Set(marker.tensors.map((x) => x.file))].sort(), ['model-00001-of-00002.gguf', 'model-00002-of-00002.gguf'], 'tensors come from both shards');
  const prompt = [1, 403, 407, 261, 378];
  t.same(await greedyOf(dir as string, prompt, 16), await greedyOf(await resolveGgufModel(single, home) as string, prompt, 16), 'same greedy tokens as the single file');
  fs.rmSync(shards[1] as string);
  const err = await resolveGgufModel(shards[0] as string, path.join(work, 'state2')).catch((e: unknown) => e);
  t.ok(isHearthError(err) && err.code === 'HEARTH_ERR_GGUF_NOT_FOUND' && /00002-of-00002/.test(err.message), `a missing shard is named: ${(err as Error).message}`);
});

t.test('ollama:NAME[:TAG] reads the model blob from Ollama\'s store, read-only', { skip }, async (t) => {
  const store = path.join(work, 'ollama');
  const gg = ggufOf('stories260k', 'f16');
  const digest = await sha256(gg);
  fs.mkdirSync(path.join(store, 'blobs'), { recursive: true });
  fs.copyFileSync(gg, path.join(store, 'blobs', `sha256-${digest}`));
  fs.mkdirSync(path.join(store, 'manifests/registry.ollama.ai/library/stories'), { recursive: true });
  fs.writeFileSync(path.join(store, 'manifests/registry.ollama.ai/library/stories/260k'), JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: fs.statSync(gg).size }],
  }));
  const before = fs.statSync(path.join(store, 'blobs', `sha256-${digest}`)).mtimeMs;
  const prev = process.env['OLLAMA_MODELS'];
  process.env['OLLAMA_MODELS'] = store;
  t.teardown(() => { if (prev === undefined) delete process.env['OLLAMA_MODELS']; else process.env['OLLAMA_MODELS'] = prev; });
  fs.chmodSync(path.join(store, 'blobs', `sha256-${digest}`), 0o444);
  const dir = await resolveGgufModel('ollama:stories:260k', home);
  t.ok(dir !== null && path.basename(dir).includes(digest.slice(0, 16)), 'the folder is named by the blob digest');
  t.equal((await loadServedModel(dir as string, null, null)).model.id, 'stories:260k', 'served as Ollama names it');
  const prompt = [1, 403, 407, 261, 378];
  t.same(await greedyOf(dir as string, prompt, 16), await greedyOf(models.stories260k, prompt, 16), 'the blob serves the model');
  t.equal(fs.statSync(path.join(store, 'blobs', `sha256-${digest}`)).mtimeMs, before, 'the blob is untouched');
  const missing = await resolveGgufModel('ollama:llama3.2:1b', home).catch((e: unknown) => e);
  t.ok(isHearthError(missing) && missing.code === 'HEARTH_ERR_GGUF_NOT_FOUND' && /ollama pull llama3\.2:1b/.test(missing.message), `a model Ollama lacks says how to get it: ${(missing as Error).message}`);
});

t.test('stages decoding one GGUF folder at the same time do not pull it from under each other', { skip }, async (t) => {
  // Four engine threads open the folder at once and each finds nothing decoded: the first rename
  // wins, the others use its folder (they used to remove it and put their own, and a stage that
  // was already reading failed with ENOENT about one round in four).
  const { DECODED_DIR } = await import('../src/gguf/index.ts');
  const view = await resolveGgufModel(ggufOf('stories260k', 'f32'), path.join(work, 'race')) as string;
  let failed = 0;
  for (let round = 0; round < 8; round++) {
    fs.rmSync(path.join(view, DECODED_DIR), { recursive: true, force: true });
    try {
      const m = await loadLocalModel(view, { threads: 1, stages: 4 });
      await m.pipeline.close();
    } catch (e) {
      failed++;
      t.comment(`round ${round}: ${(e as Error).message}`);
    }
  }
  t.equal(failed, 0, 'all 8 rounds of 4 stages loaded');
});
