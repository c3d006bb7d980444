// How a checkpoint folder declares its pooling (sentence-transformers modules.json / 1_Pooling),
// and the pooling itself: last, first or mean, then L2-normalized.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { poolEmbedding, poolingOf } from '../src/api/embeddings-pooling.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'hearth-pooling-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string, files: Record<string, unknown>): string {
  const dir = path.join(root, name);
  for (const [f, v] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), JSON.stringify(v));
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

t.test('the pooling a folder declares', async (t) => {
  t.equal(poolingOf(folder('plain', {})), 'mean', 'nothing declared: mean');
  t.equal(poolingOf(folder('qwen3-embedding', { '1_Pooling/config.json': { pooling_mode_lasttoken: true, pooling_mode_mean_tokens: false } })), 'last', 'Qwen3-Embedding: last token');
  t.equal(poolingOf(folder('bert', { '1_Pooling/config.json': { pooling_mode_cls_token: true } })), 'first', 'CLS: first token');
  t.equal(poolingOf(folder('moved', {
    'modules.json': [{ idx: 0, path: '', type: 'sentence_transformers.models.Transformer' }, { idx: 1, path: 'pool', type: 'sentence_transformers.models.Pooling' }],
    'pool/config.json': { pooling_mode_lasttoken: true },
    '1_Pooling/config.json': { pooling_mode_mean_tokens: true },
  })), 'last', "modules.json names the Pooling module's folder");
  t.equal(poolingOf(folder('broken', { '1_Pooling/config.json': 'not an object' })), 'mean', 'an unreadable config: mean');
});

t.test('pooled, then L2-normalized', async (t) => {
  // Two positions of width 2: [3, 0] and [0, 4].
  const h = Float32Array.of(3, 0, 0, 4);
  t.same(Array.from(poolEmbedding(h, 2, 'last')), [0, 1]);
  t.same(Array.from(poolEmbedding(h, 2, 'first')), [1, 0]);
  const m = Array.from(poolEmbedding(h, 2, 'mean'));
  t.ok(Math.abs(m[0]! - 0.6) < 1e-6 && Math.abs(m[1]! - 0.8) < 1e-6, `mean [1.5, 2] normalized: ${m.join(', ')}`);
});
