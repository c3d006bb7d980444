import os from 'node:os';
import { openCheckpoint } from '../model/index.ts';
import type { ModelConfig } from '../model/types.ts';
import { createShardEngine } from '../runtime/index.ts';
import type { Provider, Quant } from '../runtime/types.ts';
import { LocalPipeline } from '../scheduler/index.ts';
import { StageRunner } from '../worker/stage-runner.ts';
import { evenSplit, parseSplit, type Range } from './split.ts';

export interface LocalModelOptions {
  readonly split?: string;
  readonly stages?: number;
  readonly quant?: Quant;
  readonly threads?: number;
  readonly provider?: Provider;
}

export interface LocalModel {
  readonly config: ModelConfig;
  readonly ranges: readonly Range[];
  readonly pipeline: LocalPipeline;
  readonly runners: readonly StageRunner[];
}

/** Loads a checkpoint as a chain of in-process shard engines (one worker thread each). */
export async function loadLocalModel(dir: string, opts: LocalModelOptions = {}): Promise<LocalModel> {
  const ckpt = openCheckpoint(dir);
  const config = ckpt.config;
  ckpt.close();
  const ranges = opts.split !== undefined ? parseSplit(opts.split, config.numLayers) : evenSplit(config.numLayers, opts.stages ?? 1);
  // Stages share this machine's cores: split the intra-op threads between them.
  const threads = opts.threads ?? Math.max(1, Math.floor(os.availableParallelism() / ranges.length));
  const engines = await Promise.all(
    ranges.map(([start, end]) =>
      createShardEngine(dir, { start, end, quant: opts.quant ?? 'none', threads, provider: opts.provider ?? 'cpu' }),
    ),
  );
  const runners = engines.map((e) => new StageRunner(e));
  return { config, ranges, pipeline: new LocalPipeline(runners), runners };
}
