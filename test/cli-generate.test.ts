// `hearth generate` as a user runs it: greedy output is identical whatever the split (1 stage,
// explicit uneven split, 3 stages), identical to the reference forward pass, and — for the real
// stories260k checkpoint — begins with the story its SOURCE.md records.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { generateCheckpoint, openCheckpoint, referenceGreedy } from '../src/model/index.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { repoRoot } from './helpers/hearth.ts';

const run = promisify(execFile);
const BIN = path.join(repoRoot, 'bin/hearth.js');
const stories = path.resolve(repoRoot, '../shared/models/stories260k');
const haveStories = fs.existsSync(path.join(stories, 'model.safetensors'));

async function generate(dir: string, prompt: string, tokens: number, extra: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [BIN, 'generate', '--model', dir, '--prompt', prompt, '--max-tokens', String(tokens), '--temperature', '0', '--threads', '1', ...extra], { cwd: repoRoot, maxBuffer: 1 << 20 });
  return stdout;
}

async function referenceText(dir: string, prompt: string, tokens: number): Promise<string> {
  const tok = await loadTokenizer(dir);
  const ids = tok.encode(prompt, { addSpecialTokens: true });
  const ckpt = openCheckpoint(dir);
  try {
    const out = referenceGreedy(ckpt, ids, tokens, tok.eosTokenIds).filter((id) => !tok.eosTokenIds.includes(id));
    const dec = tok.createDecoder({ skipSpecialTokens: true });
    return out.map((id) => dec.push(id)).join('') + dec.flush();
  } finally {
    ckpt.close();
  }
}

t.test('stories260k: same story whatever the split, equal to the reference and SOURCE.md', { skip: haveStories ? false : 'stories260k absent' }, async (t) => {
  const prompt = 'Once upon a time';
  const outs = await Promise.all([
    generate(stories, prompt, 40, []),
    generate(stories, prompt, 40, ['--split', '0:2,2:5']),
    generate(stories, prompt, 40, ['--stages', '3']),
  ]);
  t.equal(outs[1], outs[0], '--split 0:2,2:5 equals one stage');
  t.equal(outs[2], outs[0], '--stages 3 equals one stage');
  t.equal(outs[0], await referenceText(stories, prompt, 40), 'equals the reference forward pass');
  const md = fs.readFileSync(path.join(stories, 'SOURCE.md'), 'utf8');
  const recorded = /Text:\s*\n\s*"([\s\S]*?)"\n/.exec(md)?.[1]?.replace(/\n\s+/g, ' ') ?? '';
  t.ok(recorded.startsWith('Once upon a time'), 'SOURCE.md records a story');
  t.ok((prompt + outs[0]).startsWith(recorded.slice(0, 80)), `begins with the recorded story: ${JSON.stringify(outs[0].slice(0, 60))}`);
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-gen-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('a generated qwen2 checkpoint: identical across splits and to the reference', async (t) => {
  await generateCheckpoint(dir, { preset: 'tiny-qwen2', seed: 3 });
  const prompt = 'The quick brown fox';
  const [one, split] = await Promise.all([generate(dir, prompt, 12, []), generate(dir, prompt, 12, ['--split', '0:1,1:4'])]);
  t.equal(split, one, 'uneven split equals one stage');
  t.equal(one, await referenceText(dir, prompt, 12), 'equals the reference forward pass');
});

t.test('bad input gets a one-line message, not a stack', async (t) => {
  const err = await run(process.execPath, [BIN, 'generate', '--model', dir, '--prompt', 'x', '--split', '0:2,3:4'], { cwd: repoRoot }).catch((e: { stderr: string; code: number }) => e);
  t.not((err as { code: number }).code, 0, 'non-zero exit');
  t.match((err as { stderr: string }).stderr, /--split: ranges must be contiguous/);
  t.notMatch((err as { stderr: string }).stderr, /\n\s+at /, 'no stack trace');
});
