// OpenAI's /v1/embeddings (issue 21 item 6) against `hearth up` (a real nats-server, two worker
// processes): the final-normed hidden states come back from the last stage over the bus, are
// pooled as the checkpoint declares (sentence-transformers 1_Pooling: last token; else mean) and
// L2-normalized — equal to the reference forward pass pooled the same way. The real openai SDK
// asks for base64 by default and decodes it; a retrieval step with the AI SDK's embedMany picks
// the right document.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { OpenAIEmbeddings } from '@langchain/openai';
import { cosineSimilarity, embedMany } from 'ai';
import OpenAI from 'openai';
import t from 'tap';
import { openCheckpoint } from '../src/model/index.ts';
import { referenceHiddenStates } from '../src/model/reference.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { startHearth, tinyCheckpoint } from './helpers/hearth.ts';

/** The reference embedding: final-normed states pooled as asked, L2-normalized (float64). */
function referenceEmbedding(dir: string, tokens: readonly number[], pooling: 'mean' | 'last'): Float64Array {
  const ckpt = openCheckpoint(dir);
  const states = referenceHiddenStates(ckpt, tokens);
  ckpt.close();
  const h = states[0]!.length;
  const v = new Float64Array(h);
  if (pooling === 'last') v.set(states.at(-1)!);
  else for (const s of states) for (let i = 0; i < h; i++) v[i]! += s[i]! / states.length;
  const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  return v.map((x) => x / norm);
}

function compare(got: readonly number[], want: Float64Array): { cos: number; maxDiff: number } {
  let dot = 0;
  let g2 = 0;
  let maxDiff = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length; i++) {
    dot += got[i]! * want[i]!;
    g2 += got[i]! * got[i]!;
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
  }
  return { cos: dot / Math.sqrt(g2), maxDiff };
}

const base = await tinyCheckpoint('qwen3');
const tokenizer = await loadTokenizer(base);
const text = 'hearth embeds a sentence across two workers';
const ids = tokenizer.encode(text, { addSpecialTokens: true });

t.test('last-token pooling (a sentence-transformers 1_Pooling config), exact vs the reference', async (t) => {
  // A Qwen3-Embedding-style folder: the same weights with modules.json and 1_Pooling/config.json.
  const root = mkdtempSync(path.join(os.tmpdir(), 'hearth-emb-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'tiny-qwen3-embedding');
  cpSync(base, dir, { recursive: true });
  writeFileSync(path.join(dir, 'modules.json'), JSON.stringify([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
  ]));
  mkdirSync(path.join(dir, '1_Pooling'));
  writeFileSync(path.join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 64, pooling_mode_cls_token: false, pooling_mode_mean_tokens: false, pooling_mode_lasttoken: true, include_prompt: true }));
  const h = await startHearth(t, { modelDir: dir, workers: 2 });
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey });

  // The SDK asks for base64 by default and decodes the float32 bytes.
  const r = await client.embeddings.create({ model: h.modelId, input: [text, 'a second input'] });
  t.equal(r.data.length, 2);
  t.equal(r.usage.prompt_tokens, ids.length + tokenizer.encode('a second input', { addSpecialTokens: true }).length);
  const want = referenceEmbedding(dir, ids, 'last');
  const c = compare(r.data[0]!.embedding, want);
  t.ok(c.cos > 0.99999 && c.maxDiff < 1e-4, `text: cosine ${c.cos}, max abs diff ${c.maxDiff}`);
  const byIds = await client.embeddings.create({ model: h.modelId, input: [ids.slice(0, 5), ids.slice(0, 3)] });
  t.equal(byIds.data.length, 2);
  const c2 = compare(byIds.data[0]!.embedding, referenceEmbedding(dir, ids.slice(0, 5), 'last'));
  t.ok(c2.cos > 0.99999 && c2.maxDiff < 1e-4, `token ids: cosine ${c2.cos}, max abs diff ${c2.maxDiff}`);
  // Mean pooling would give another vector: the checkpoint's own config was honoured.
  const asMean = compare(r.data[0]!.embedding, referenceEmbedding(dir, ids, 'mean'));
  t.ok(asMean.cos < 0.999, `not the mean-pooled vector (cosine ${asMean.cos})`);

  const f = await client.embeddings.create({ model: h.modelId, input: text, encoding_format: 'float' });
  t.ok(compare(f.data[0]!.embedding, want).maxDiff < 1e-6, 'float and base64 carry the same numbers');
  const width = f.data[0]!.embedding.length;
  const same = await client.embeddings.create({ model: h.modelId, input: text, dimensions: width, encoding_format: 'float' });
  t.equal(same.data[0]!.embedding.length, width, 'dimensions equal to the width is accepted');
  const status = (p: Promise<unknown>): Promise<number> => p.then(() => 200, (e: { status?: number }) => e.status ?? 0);
  t.equal(await status(client.embeddings.create({ model: h.modelId, input: text, dimensions: width - 1 })), 400, 'another width is refused');
  t.equal(await status(client.embeddings.create({ model: h.modelId, input: '' })), 400, 'an empty input is refused');
  t.equal(await status(client.embeddings.create({ model: 'nope', input: text })), 404, 'an unknown model is a 404');
});

t.test('mean pooling by default, and a retrieval step with the AI SDK', async (t) => {
  const h = await startHearth(t, { workers: 2 });
  const client = new OpenAI({ baseURL: h.baseURL, apiKey: h.apiKey });
  const r = await client.embeddings.create({ model: h.modelId, input: text });
  const c = compare(r.data[0]!.embedding, referenceEmbedding(base, ids, 'mean'));
  t.ok(c.cos > 0.99999 && c.maxDiff < 1e-4, `mean: cosine ${c.cos}, max abs diff ${c.maxDiff}`);

  // Retrieval: with random weights "right" means the document identical to the query ranks first.
  const provider = createOpenAICompatible({ name: 'hearth', baseURL: h.baseURL, apiKey: h.apiKey });
  const model = provider.embeddingModel(h.modelId);
  const docs = ['The kettle boils water for tea.', 'Workers pass activations over NATS.', 'A fox jumps over the lazy dog.', 'Rain is forecast for Tuesday.'];
  const { embeddings } = await embedMany({ model, values: docs });
  t.equal(embeddings.length, docs.length);
  for (const [qi, query] of [[1, docs[1]!], [3, docs[3]!]] as const) {
    const { embeddings: [q] } = await embedMany({ model, values: [query] });
    const ranked = docs.map((_, i) => i).sort((a, b) => cosineSimilarity(q!, embeddings[b]!) - cosineSimilarity(q!, embeddings[a]!));
    t.equal(ranked[0], qi, `the query "${query}" retrieves its own document first (ranking ${ranked.join(',')})`);
  }
  // The same step through LangChain's OpenAIEmbeddings (what its vector stores call).
  const lc = new OpenAIEmbeddings({ model: h.modelId, apiKey: h.apiKey, configuration: { baseURL: h.baseURL } });
  const vecs = await lc.embedDocuments(docs);
  const q = await lc.embedQuery(docs[2]!);
  const best = vecs.map((v, i) => [cosineSimilarity(q, v), i] as const).sort((a, b) => b[0] - a[0])[0]![1];
  t.equal(best, 2, 'LangChain: the identical document ranks first');
  t.ok(compare(vecs[1]!, Float64Array.from(embeddings[1]!)).maxDiff < 1e-6, 'LangChain and the AI SDK get the same vectors');
});
