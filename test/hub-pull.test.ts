// `hearth pull` against a local server that speaks the Hub's API the way @huggingface/hub calls it:
// GET /api/models/<id>/tree/<rev> for the listing (LFS files carry lfs.oid = sha256), and
// GET /<id>/resolve/<rev>/<path>, which for LFS files redirects to a CDN URL (X-Linked-ETag =
// sha256) that honours Range. The server drops one connection mid-file; the next run resumes.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import t from 'tap';

import { isHearthError } from '../src/errors/index.ts';
import { listLocalModels, pullModel, resolveLocalModel, type ProgressSink } from '../src/hub/index.ts';
import { layoutSafetensors } from '../src/weights/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

function randomBytesSeeded(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A small llama checkpoint as repo files; returns the files and the true parameter count. */
function checkpointFiles(): { files: Map<string, Buffer>; params: number } {
  const files = new Map<string, Buffer>();
  const hidden = 64;
  const vocab = 1024;
  files.set('config.json', Buffer.from(JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: hidden, num_hidden_layers: 2, vocab_size: vocab })));
  files.set('generation_config.json', Buffer.from('{"eos_token_id": 2}'));
  files.set('tokenizer.json', Buffer.from(JSON.stringify({ model: { type: 'BPE', vocab: {} } })));
  files.set('tokenizer_config.json', Buffer.from('{"chat_template": "{{ messages }}"}'));
  files.set('README.md', Buffer.from('# not needed'));
  files.set('pytorch_model.bin', randomBytesSeeded(5000, 9));
  files.set('original/params.json', Buffer.from('{}'));
  let params = 0;
  const weightMap: Record<string, string> = {};
  const shard = (name: string, tensors: [string, number[]][], seed: number): void => {
    const datas = tensors.map(([, s], i) => randomBytesSeeded(s.reduce((a, b) => a * b, 1) * 4, seed + i));
    const layout = layoutSafetensors(tensors.map(([n, s], i) => ({ name: n, dtype: 'F32', shape: s, byteLength: (datas[i] as Buffer).length })));
    files.set(name, Buffer.concat([layout.header, ...datas]));
    for (const [n, s] of tensors) {
      weightMap[n] = name;
      params += s.reduce((a, b) => a * b, 1);
    }
  };
  // ~1 MB per shard: big enough that a dropped connection lands mid-file.
  shard('model-00001-of-00002.safetensors', [['model.embed_tokens.weight', [vocab, hidden]], ['model.layers.0.mlp.up_proj.weight', [hidden * 2, hidden]]], 1);
  shard('model-00002-of-00002.safetensors', [['model.layers.1.mlp.up_proj.weight', [hidden * 2, hidden]], ['lm_head.weight', [vocab, hidden]]], 5);
  files.set('model.safetensors.index.json', Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap })));
  // A stray single-file copy the index does not name: must not be downloaded.
  files.set('consolidated.safetensors', randomBytesSeeded(3000, 77));
  return { files, params };
}

interface Repo {
  files: Map<string, Buffer>;
  /** Served instead of the real bytes (the listing still names the real sha256). */
  tampered?: Map<string, Buffer>;
  /** Files whose next body is cut off halfway (then served normally). */
  dropOnce?: Set<string>;
}

interface Seen { method: string; url: string; range: string | undefined }

function fakeHub(repos: Map<string, Repo>): { server: http.Server; seen: Seen[] } {
  const seen: Seen[] = [];
  const sendBytes = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, etag: string, drop: boolean): void => {
    res.setHeader('ETag', `"${etag}"`);
    res.setHeader('Accept-Ranges', 'bytes');
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = body.length - 1;
    if (m !== null) {
      start = Number(m[1]);
      end = m[2] === '' ? end : Math.min(end, Number(m[2]));
      if (start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${body.length}`);
    }
    const part = body.subarray(start, end + 1);
    res.setHeader('Content-Length', part.length);
    if (drop) {
      // Send half, then cut the connection: what a flaky Wi-Fi does to a 10 GB download.
      res.write(part.subarray(0, Math.floor(part.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(part);
  };
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', range: req.headers.range });
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname);
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(p);
    if (m !== null) {
      if (m[1] === 'test-org/gated') {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"Access to model test-org/gated is restricted."}');
        return;
      }
      const repo = repos.get(m[1] as string);
      if (repo === undefined) {
        res.writeHead(404, { 'content-type': 'application/json', 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
        return;
      }
      const entries = [...repo.files].filter(([f]) => !f.includes('/')).map(([f, b]) => {
        const lfs = f.endsWith('.safetensors') || f.endsWith('.bin');
        return lfs
          ? { type: 'file', oid: gitSha1(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(b)}\nsize ${b.length}\n`)), size: b.length, path: f, lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } }
          : { type: 'file', oid: gitSha1(b), size: b.length, path: f };
      });
      entries.push({ type: 'directory', oid: '0'.repeat(40), size: 0, path: 'original' });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entries));
      return;
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    const cdn = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(p);
    const id = m?.[1] ?? cdn?.[1];
    const file = m?.[3] ?? cdn?.[2];
    const repo = id === undefined ? undefined : repos.get(id);
    const real = file === undefined ? undefined : repo?.files.get(file);
    if (repo === undefined || file === undefined || real === undefined) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
      return;
    }
    const lfs = file.endsWith('.safetensors') || file.endsWith('.bin');
    if (m !== null && lfs) {
      // The Hub answers resolve/ for LFS files with a redirect to its CDN; the sha256 rides in X-Linked-ETag.
      res.writeHead(302, { Location: `/cdn/${id}/${file}`, 'X-Linked-ETag': `"${sha256(real)}"`, 'X-Linked-Size': String(real.length), 'X-Repo-Commit': 'c'.repeat(40), ETag: '"pointer"' }).end();
      return;
    }
    const body = repo.tampered?.get(file) ?? real;
    const isProbe = req.headers.range === 'bytes=0-0';
    const drop = !isProbe && repo.dropOnce?.delete(file) === true;
    sendBytes(req, res, body, lfs ? sha256(real) : gitSha1(real), drop);
  });
  return { server, seen };
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/hearth.js'), ...args], { cwd: repoRoot, env: { ...process.env, HF_TOKEN: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const recorder = (): ProgressSink & { total: number; bytesSeen: number } => {
  const r = { total: -1, bytesSeen: 0, start(n: number) { r.total = n; }, fileStart() {}, bytes(n: number) { r.bytesSeen += n; }, fileDone() {}, finish() {} };
  return r;
};

t.test('pull: interrupted, resumed, verified; models lists it', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'hearth-pull-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const { files, params } = checkpointFiles();
  const shard1 = 'model-00001-of-00002.safetensors';
  const tampered = new Map(files);
  const bad = Buffer.from(files.get(shard1) as Buffer);
  bad[bad.length - 3] = (bad[bad.length - 3] as number) ^ 0x01;
  const repos = new Map<string, Repo>([
    ['test-org/tiny', { files, dropOnce: new Set([shard1]) }],
    ['test-org/flaky', { files, dropOnce: new Set([shard1]) }],
    ['test-org/tampered', { files: tampered, tampered: new Map([[shard1, bad]]) }],
  ]);
  const { server, seen } = fakeHub(repos);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const modelsDir = path.join(tmp, 'models');
  const dir = path.join(modelsDir, 'test-org', 'tiny');
  const wanted = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json', shard1, 'model-00002-of-00002.safetensors'];

  await t.test('first run is cut off mid-file and keeps the partial', async (t) => {
    const err = await pullModel({ id: 'test-org/tiny', modelsDir, endpoint, retries: 0 }).catch((e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_PULL'), `HEARTH_ERR_PULL: ${(err as Error).message}`);
    t.match((err as Error).message, /interrupted.*run the same command again to resume/);
    const part = await stat(path.join(dir, `${shard1}.incomplete`));
    t.ok(part.size > 0 && part.size < (files.get(shard1) as Buffer).length, `partial holds ${part.size} of ${(files.get(shard1) as Buffer).length} bytes`);
    t.ok(existsSync(path.join(dir, 'config.json')), 'small files finished before it');
  });

  await t.test('second run (the CLI) resumes with a Range request and verifies', async (t) => {
    const partSize = (await stat(path.join(dir, `${shard1}.incomplete`))).size;
    const before = seen.length;
    const r = await runCli(['pull', 'test-org/tiny', '--dir', modelsDir, '--endpoint', endpoint]);
    t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-500)})`);
    t.equal(r.stdout.trim(), dir, 'prints the folder');
    t.match(r.stderr, /%.*\/s.*ETA/, 'progress with rate and ETA');
    const resumed = seen.slice(before).filter((s) => s.url.includes(shard1) && s.range === `bytes=${partSize}-${(files.get(shard1) as Buffer).length - 1}`);
    t.equal(resumed.length, 1, `resumed from byte ${partSize} with a Range request`);
    t.same((await readdir(dir)).filter((n) => !n.startsWith('.')).sort(), [...wanted].sort(), 'exactly the checkpoint files (no .bin, README, stray or subfolder files)');
    for (const f of wanted) t.ok((await readFile(path.join(dir, f))).equals(files.get(f) as Buffer), `${f} identical`);
  });

  await t.test('third run finds everything verified and downloads nothing', async (t) => {
    const before = seen.length;
    const rec = recorder();
    const res = await pullModel({ id: 'test-org/tiny', modelsDir, endpoint, progress: rec });
    t.same(res.downloaded, []);
    t.equal(rec.total, 0);
    t.equal(seen.slice(before).filter((s) => s.url.includes('/resolve/') || s.url.includes('/cdn/')).length, 0, 'only the listing was asked for');
  });

  await t.test('a drop within one run is retried from where it stopped', async (t) => {
    const before = seen.length;
    const rec = recorder();
    const res = await pullModel({ id: 'test-org/flaky', modelsDir, endpoint, retries: 2, retryDelayMs: 10, progress: rec });
    t.ok(res.downloaded.includes(shard1));
    t.ok(seen.slice(before).some((s) => s.url.includes(shard1) && s.range !== undefined && !s.range.startsWith('bytes=0-')), 'retry used a Range request');
    t.ok((await readFile(path.join(res.dir, shard1))).equals(files.get(shard1) as Buffer), 'identical after retry');
    t.equal(rec.bytesSeen, rec.total, 'progress reached the total');
  });

  await t.test('a tampered file fails the checksum and is removed', async (t) => {
    const err = await pullModel({ id: 'test-org/tampered', modelsDir, endpoint, retries: 0 }).catch((e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_PULL'));
    t.match((err as Error).message, new RegExp(`${shard1.replace(/\./g, '\\.')}: checksum mismatch \\(sha256`));
    const tdir = path.join(modelsDir, 'test-org', 'tampered');
    t.notOk(existsSync(path.join(tdir, shard1)), 'no bad file in place');
    t.notOk(existsSync(path.join(tdir, `${shard1}.incomplete`)), 'no bad partial to resume from');
  });

  await t.test('offline: one clear line', async (t) => {
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await pullModel({ id: 'test-org/tiny', modelsDir: path.join(tmp, 'm2'), endpoint: `http://127.0.0.1:${port}` }).catch((e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_PULL'));
    t.match((err as Error).message, new RegExp(`^pull test-org/tiny: cannot reach 127\\.0\\.0\\.1:${port}: ECONNREFUSED; copy a checkpoint folder and pass --model DIR$`));
    const missing = await pullModel({ id: 'test-org/nope', modelsDir: path.join(tmp, 'm2'), endpoint }).catch((e: unknown) => e);
    t.match((missing as Error).message, /not found on/, 'unknown repo → not found');
    const gated = await pullModel({ id: 'test-org/gated', modelsDir: path.join(tmp, 'm2'), endpoint }).catch((e: unknown) => e);
    t.match((gated as Error).message, /answered 401: the model is gated or private; .*HF_TOKEN/, 'gated → says to set HF_TOKEN');
    const badId = await pullModel({ id: '../etc', modelsDir: path.join(tmp, 'm2'), endpoint }).catch((e: unknown) => e);
    t.match((badId as Error).message, /ORG\/NAME/, 'a path is not a repo id');
  });

  await t.test('hearth models lists what is local', async (t) => {
    const list = await listLocalModels(modelsDir);
    const tiny = list.find((m) => m.id === 'test-org/tiny');
    t.ok(tiny, 'tiny listed');
    t.equal(tiny?.family, 'llama');
    t.equal(tiny?.params, params, 'params counted from the headers');
    t.equal(tiny?.dtype, 'F32');
    t.equal(tiny?.state, 'complete');
    let onDisk = 0;
    for (const f of await readdir(dir)) onDisk += (await stat(path.join(dir, f))).size;
    t.equal(tiny?.sizeBytes, onDisk, 'size on disk');
    t.equal(list.find((m) => m.id === 'test-org/tampered')?.state, 'partial', 'failed pull shows as partial');
    t.equal(resolveLocalModel('test-org/tiny', modelsDir), dir, '--model ORG/NAME finds the pulled folder');
    t.equal(resolveLocalModel(dir, modelsDir), dir, '--model DIR is taken as is');
    t.equal(resolveLocalModel('test-org/absent', modelsDir), null);
    const r = await runCli(['models', '--dir', modelsDir]);
    t.equal(r.code, 0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('test-org/tiny '));
    t.ok(line, `row for test-org/tiny in:\n${r.stdout}`);
    t.match(line ?? '', /llama\s+\d+(\.\d)?K\s+F32\s+[\d.]+ [KM]B\s+complete/);
  });
});
