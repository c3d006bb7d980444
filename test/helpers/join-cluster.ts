// One gateway-side cluster pipeline over a real nats-server, and a way to start real workers that
// join it: the setup the join and planner tests share (each makes its own tiny checkpoint, so the
// shapes and seeds stay theirs). Logs go to `logs` so a test can check what the planner said.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NatsBus } from '../../src/bus/index.ts';
import { createClusterPipeline, modelCostsFromCheckpoint, type ClusterPipeline } from '../../src/cluster/index.ts';
import { generateCheckpoint, openCheckpoint } from '../../src/model/index.ts';
import { spawnWorker, withNats } from './nats.ts';

interface Tap { teardown(fn: () => unknown): void }

export interface JoinCluster {
  readonly pipeline: ClusterPipeline;
  /** Starts a worker joining the cluster (1 thread, 1G offered) with extra flags. */
  readonly worker: (name: string, extra?: string[]) => void;
  /** The pipeline's info lines, "message {fields}". */
  readonly logs: string[];
}

/** A tiny-llama checkpoint of these dimensions (4 layers, vocab 500), served by a cluster pipeline with the 'fastest' objective. */
export async function startJoinCluster(t: Tap, shape: { hiddenSize: number; headDim: number; seed: number }): Promise<JoinCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-join-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, {
    preset: 'tiny-llama', hiddenSize: shape.hiddenSize, numHeads: 4, numKvHeads: 2, headDim: shape.headDim,
    intermediateSize: shape.hiddenSize * 3, numLayers: 4, vocabSize: 500, tokenizer: false, seed: shape.seed,
  });
  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 2048 });
  const cfg = ckpt.config;
  ckpt.close();
  const nats = await withNats(t);
  const bus = await NatsBus.connect({ servers: nats.url, token: nats.token, name: 'test-gateway' });
  const logs: string[] = [];
  const log = { debug() {}, info(o: object, msg?: string) { logs.push(`${msg ?? ''} ${JSON.stringify(o)}`); }, warn() {}, error() {} };
  const pipeline = createClusterPipeline({
    bus, cost, cluster: 'test', settleMs: 300, log, objective: 'fastest',
    model: { name: 'tiny', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
  });
  t.teardown(async () => { await pipeline.close(); await bus.close(); });
  const worker = (name: string, extra: string[] = []): void => {
    spawnWorker(t, ['--join', nats.url, '--token', nats.token, '--cluster', 'test', '--name', name, '--model', model, '--threads', '1', '--memory', '1G', ...extra]);
  };
  return { pipeline, worker, logs };
}
