// Gateway side of cluster tests: a ClusterPipeline over a real nats-server, for a checkpoint.
import { NatsBus } from '../../src/bus/index.ts';
import { createClusterPipeline, modelCostsFromCheckpoint, type ClusterPipeline } from '../../src/cluster/index.ts';
import { openCheckpoint } from '../../src/model/index.ts';
import path from 'node:path';

interface Tap { teardown(fn: () => unknown): void }

export async function gateway(t: Tap, url: string, token: string, modelDir: string, opts: { cluster?: string; settleMs?: number; objective?: 'fastest' | 'balanced' } = {}): Promise<{ pipeline: ClusterPipeline; bus: NatsBus }> {
  const ckpt = openCheckpoint(modelDir);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 2048 });
  const cfg = ckpt.config;
  ckpt.close();
  const bus = await NatsBus.connect({ servers: url, token, name: 'test-gateway' });
  const pipeline = createClusterPipeline({
    bus, cost, cluster: opts.cluster ?? 'test', settleMs: opts.settleMs ?? 300,
    // These tests exercise splitting: every worker gets a share, as they expect.
    objective: opts.objective ?? 'balanced',
    model: { name: path.basename(modelDir), numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
  });
  t.teardown(async () => { await pipeline.close(); await bus.close(); });
  return { pipeline, bus };
}
