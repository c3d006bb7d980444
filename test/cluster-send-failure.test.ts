// A step whose send fails (the codec refuses the message, as msgpack did for a 65,536-entry
// logit_bias) fails that call alone: nothing is left pending whose later rejection — a plan
// change, a step timeout, close() — would go unhandled and end the gateway (issue 8, defect 1).
// A real worker node and the real cluster pipeline over the in-process bus; the gateway's bus
// refuses step messages while `refuse` is on.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryHub, type Bus } from '../src/bus/index.ts';
import { createClusterPipeline, modelCostsFromCheckpoint } from '../src/cluster/index.ts';
import { isHearthError } from '../src/errors/index.ts';
import { generateCheckpoint, openCheckpoint } from '../src/model/index.ts';
import { GREEDY } from '../src/sampling/types.ts';
import { WorkerNode } from '../src/worker/index.ts';
import { until } from './helpers/nats.ts';

t.test('a failed send rejects that step only and leaves no unhandled rejection behind', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-send-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const model = path.join(dir, 'tiny');
  await generateCheckpoint(model, { preset: 'tiny-llama', numLayers: 2, vocabSize: 500, tokenizer: false, seed: 3 });
  const ckpt = openCheckpoint(model);
  const cost = modelCostsFromCheckpoint(ckpt, { quant: 'none', kvTokens: 256 });
  const cfg = ckpt.config;
  ckpt.close();

  const hub = new MemoryHub();
  const node = new WorkerNode({ bus: hub.bus(), cluster: 'c', name: 'w1', memory: 1 << 30, threads: 1, speed: 10, modelDir: model, cacheDir: dir });
  node.start();
  t.teardown(() => node.close());

  let refuse = false;
  const inner = hub.bus();
  const bus: Bus = {
    maxPayload: inner.maxPayload,
    publish(subject, msg) {
      if (refuse && msg.t === 'step') throw new Error('Object is too large to serialize with fast 16-bit map size');
      inner.publish(subject, msg);
    },
    subscribe: (s, h) => inner.subscribe(s, h),
    flush: () => inner.flush(),
    onStatus: (l) => inner.onStatus(l),
    close: () => inner.close(),
  };
  const pipeline = createClusterPipeline({
    bus, cluster: 'c', cost, settleMs: 50,
    model: { name: 'tiny', numLayers: cfg.numLayers, hiddenSize: cfg.hiddenSize, vocabSize: cfg.vocabSize, gatewayUrl: '', weightsToken: '' },
  });
  await until(() => pipeline.coordinator.plan()?.live === true, 60_000, 'a live plan');

  const unhandled: unknown[] = [];
  const onUnhandled = (r: unknown): void => { unhandled.push(r); };
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => { process.off('unhandledRejection', onUnhandled); });

  const step = (seq: string) => pipeline.step({ seq, pos: 0, tokens: Int32Array.of(1, 2, 3), promptLen: 3, sampling: GREEDY, wantToken: true, wantLogits: false });
  refuse = true;
  for (let i = 0; i < 3; i++) {
    const err = await step(`bad-${i}`).then(() => null, (e: unknown) => e);
    t.ok(isHearthError(err, 'HEARTH_ERR_ENGINE') && /sending the step/.test(err.message), `the failed send fails the step with a clear error (${String(err)})`);
  }
  refuse = false;
  const ok = await step('good');
  t.type(ok.token?.token, 'number', 'the next step goes through');
  pipeline.free('good');

  // Everything still pending is rejected now: a step registered before its failed send would be
  // rejected here with nobody listening.
  await pipeline.close();
  await inner.close();
  await new Promise((r) => setTimeout(r, 50));
  t.same(unhandled.map(String), [], 'no unhandled rejection');
});
