// Issue 20 item 6: make-model presets of the shapes users run across devices (real configs, bf16,
// sharded with an index), written in pieces. Only small variants are written here.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkpointPlan, defaultShardCount, generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { run as makeModel } from '../src/cli/make-model-command.ts';

t.test('the 8B / 3B / 7B presets carry the published configs and HF-sized shards', async (t) => {
  const p8 = checkpointPlan({ preset: 'llama3.1-8b', dtype: 'bf16', shards: defaultShardCount({ preset: 'llama3.1-8b', dtype: 'bf16' }) });
  t.equal(p8.files.length, 4, '8B bf16: 4 files of at most 5 GB');
  t.ok(Math.abs(p8.totalBytes - 16.06e9) < 0.01e9, `8B bf16: ${(p8.totalBytes / 1e9).toFixed(2)} GB`);
  t.match(p8.config, { hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_key_value_heads: 8, vocab_size: 128256, tie_word_embeddings: false, torch_dtype: 'bfloat16', rope_scaling: { rope_type: 'llama3', factor: 8 } });
  t.match(checkpointPlan({ preset: 'llama3.2-3b', dtype: 'bf16' }).config, { hidden_size: 3072, num_hidden_layers: 28, tie_word_embeddings: true, rope_scaling: { factor: 32 } });
  t.match(checkpointPlan({ preset: 'qwen2.5-7b', dtype: 'bf16' }).config, { hidden_size: 3584, intermediate_size: 18944, num_key_value_heads: 4, vocab_size: 152064 });
});

t.test('a small variant writes sharded, deterministic, readable files with progress; --dry-run writes nothing', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-mk-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const small = { preset: 'llama3.1-8b' as const, hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: 3000, dtype: 'bf16' as const, shards: 3, tokenizer: false };
  const seen: number[] = [];
  await generateCheckpoint(path.join(root, 'a'), { ...small, onProgress: (done, total) => { seen.push(done); t.ok(done <= total); } });
  await generateCheckpoint(path.join(root, 'b'), small);
  const files = fs.readdirSync(path.join(root, 'a')).filter((f) => f.endsWith('.safetensors')).sort();
  t.equal(files.length, 3, 'three shards');
  t.ok(fs.existsSync(path.join(root, 'a', 'model.safetensors.index.json')), 'with an index');
  for (const f of files) t.ok(fs.readFileSync(path.join(root, 'a', f)).equals(fs.readFileSync(path.join(root, 'b', f))), `${f} byte-identical across runs`);
  t.ok(seen.length > 1 && seen.every((v, i) => i === 0 || v > (seen[i - 1] as number)), 'progress grows');
  t.equal(seen.at(-1), checkpointPlan(small).totalBytes, 'and ends at the total');
  const ck = openCheckpoint(path.join(root, 'a'));
  t.equal(ck.config.vocabSize, 3000);
  t.equal(ck.read('model.embed_tokens.weight').length, 3000 * 64, 'tensors read back');
  ck.close();

  const dry = path.join(root, 'dry');
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => { out.push(String(s)); return true; }) as typeof process.stdout.write;
  let rc: number;
  try {
    rc = await makeModel([dry, '--preset', 'llama3.1-8b', '--dry-run']);
  } finally {
    process.stdout.write = write;
  }
  // Asserted after stdout is back: tap prints its result lines there.
  t.equal(rc, 0);
  t.match(out.join(''), /"eos_token_id": 128230/, 'the config names the cut tokenizer\'s <|endoftext|> (128256 - 26)');
  t.match(out.join(''), /model-00004-of-00004\.safetensors/, 'dry run lists the 4 files');
  t.notOk(fs.existsSync(dry), 'and writes nothing');
});
