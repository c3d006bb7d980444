// The in-process path of `hearth up` without a nats-server: gateway and worker nodes on one
// MemoryHub, same contract. Also: messages from unknown nodes and other wire versions are
// dropped and logged, and a node that stops heartbeating is declared lost within 3 s.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryHub, WIRE_VERSION, encodeMessage, subjects, type Log } from '../src/bus/index.ts';
import { loadLocalModel } from '../src/cli/local-model.ts';
import { createClusterPipeline, modelCostsFromCheckpoint } from '../src/cluster/index.ts';
import { generateCheckpoint } from '../src/model/generate-checkpoint.ts';
import { openCheckpoint } from '../src/model/index.ts';
import { WorkerNode } from '../src/worker/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { greedy, until } from './helpers/nats.ts';

function recordingLog(): Log & { lines: { level: string; obj: object; msg: string }[] } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg = ''): void => { lines.push({ level, obj, msg }); };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

t.test('in-process bus: two worker nodes serve the same tokens as one process', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-mem-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-qwen2', numLayers: 4, vocabSize: 600, tokenizer: false, seed: 3 });
  const prompt = Int32Array.from({ length: 7 }, (_, i) => (i * 89 + 5) % 600);
  const local = await loadLocalModel(model, { threads: 1 });
  const want = await greedy(local.pipeline, 'ref', prompt, 12);
  await local.pipeline.close();

  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 1024 });
  const cfg = ckpt.config;
  ckpt.close();
  const hub = new MemoryHub();
  const log = recordingLog();
  const pipeline = createClusterPipeline({
    bus: hub.bus(log), cluster: 'mem', cost, log, settleMs: 50, nodeTimeoutMs: 1500, objective: 'balanced',
    model: { name: 'tiny', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
  });
  const nodes = ['a', 'b'].map((name) => new WorkerNode({ bus: hub.bus(), cluster: 'mem', name, memory: 1e9, threads: 1, speed: 10, modelDir: model, cacheDir: dir }));
  t.teardown(async () => { for (const n of nodes) await n.close(); await pipeline.close(); });
  for (const n of nodes) n.start();
  await until(() => pipeline.coordinator.plan()?.live === true && pipeline.coordinator.plan()?.stages.length === 2, 90_000, 'two live stages');
  t.same(await greedy(pipeline, 's1', prompt, 12), want, 'same greedy tokens over the in-process bus');

  // Prefix reuse travels on the wire: a sequence forked from another's first 5 positions, fed only
  // the rest of the prompt, samples what the full prompt gives.
  const step = (seq: string, pos: number, tokens: Int32Array, fork?: { from: string; len: number }) =>
    pipeline.step({ seq, pos, tokens, promptLen: prompt.length, sampling: GREEDY, wantToken: true, wantLogits: false, ...(fork !== undefined ? { fork } : {}) });
  await step('base', 0, prompt);
  const forked = await step('forked', 5, prompt.slice(5), { from: 'base', len: 5 });
  t.equal(forked.token?.token, want[0], 'a forked sequence continues like the full prompt');
  pipeline.free('base');
  pipeline.free('forked');

  // A result from a node that never announced is dropped and logged; so is another wire version.
  const intruder = hub.bus();
  intruder.publish(subjects.result('mem', pipeline.gatewayId), { t: 'result', id: 'ghost', epoch: 1, seq: 's', stepId: 1, token: { token: 1 }, logits: null, error: null, sentAt: 0, hopMs: [], stageMs: [] });
  intruder.publish(subjects.heartbeat('mem', 'ghost'), { t: 'heartbeat', id: 'ghost', epoch: 1, state: 'ready', kvBytes: 0, freeMemory: 0, tokS: 0 });
  // Another wire version, framed by hand (the bus always stamps its own version).
  const raw = encodeMessage({ v: WIRE_VERSION + 1, t: 'announce', id: 'future' } as never);
  const frame = new Uint8Array(raw.length + 1);
  frame.set(raw, 1);
  hub.publish(subjects.announce('mem', 'future'), frame);
  await until(() => log.lines.filter((l) => /unknown node|wire version/.test(l.msg)).length >= 3, 3000, 'three drops logged');
  t.ok(log.lines.some((l) => l.msg.includes('dropped a result from an unknown node') && (l.obj as { node?: string }).node === 'ghost'), 'unknown result logged');
  t.ok(log.lines.some((l) => l.msg.includes('dropped a message from an unknown node')), 'unknown heartbeat logged');
  t.ok(log.lines.some((l) => l.msg.includes('wire version mismatch') && (l.obj as { from?: string }).from === 'future'), 'other wire version logged with its sender');
  t.notOk(pipeline.clusterSnapshot().nodes.some((n) => n.id === 'future' || n.id === 'ghost'), 'neither became a member');

  // A node that goes silent (its heartbeats stop, no goodbye) is lost within 3 s.
  const b = nodes[1] as WorkerNode;
  const silentSince = Date.now();
  // Simulate a hard freeze: stop its heartbeats without a leave message.
  const frozen = b as unknown as { hb: NodeJS.Timeout | null };
  if (frozen.hb !== null) clearInterval(frozen.hb);
  await until(() => pipeline.clusterSnapshot().nodes.find((n) => n.id === b.id)?.state === 'lost', 5000, 'b lost');
  t.ok(Date.now() - silentSince < 3000, `lost after ${Date.now() - silentSince} ms (< 3 s)`);
  await until(() => pipeline.coordinator.plan()?.live === true && pipeline.coordinator.plan()?.stages.length === 1, 90_000, 'one live stage');
  t.same(await greedy(pipeline, 's2', prompt, 12), want, 'the survivor alone serves the same tokens');
});
