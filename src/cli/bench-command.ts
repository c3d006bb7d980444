import os from 'node:os';
import { parseArgs } from 'node:util';
import { QUANTS, type Quant } from '../runtime/types.ts';
import { HearthError } from '../errors/index.ts';

export const usage = `hearth bench --model DIR [--quant none|int4] [--json] [--threads N] [--stages K]
             [--prompt-tokens N] [--decode-tokens N] [--profile]
hearth bench --cluster --model DIR [--quant int4] [--streams 8] [--hop-delays 0,2] [--json]
One process: prefill tok/s, decode tok/s, time to first token, peak RSS (and RSS ÷ weight bytes).
--cluster: 2 worker processes over a real nats-server vs the same model in one process, 8 streams
vs 1, hop latency p50/p99, with and without added per-hop delay. Ratios come from one run.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      json: { type: 'boolean', default: false },
      threads: { type: 'string' },
      stages: { type: 'string', default: '1' },
      'prompt-tokens': { type: 'string', default: '128' },
      'decode-tokens': { type: 'string', default: '64' },
      profile: { type: 'boolean', default: false },
      cluster: { type: 'boolean', default: false },
      streams: { type: 'string', default: '8' },
      'hop-delays': { type: 'string', default: '0,2' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (values.model === undefined) {
    process.stderr.write(`hearth bench: --model DIR is required (e.g. make one: hearth make-model /tmp/q05 --preset qwen2.5-0.5b)\n${usage}\n`);
    return 2;
  }
  const quant = values.quant as Quant;
  if (!QUANTS.includes(quant)) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--quant must be one of ${QUANTS.join(', ')}`]);
  const int = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new HearthError('HEARTH_ERR_INVALID_REQUEST', [`--${name} must be a whole number; got "${v}"`]);
    return n;
  };
  const progress = (line: string): void => {
    if (!values.json) process.stderr.write(line + '\n');
  };

  if (values.cluster) {
    const { benchCluster, formatBenchCluster } = await import('../cluster/bench-cluster.ts');
    const r = await benchCluster({
      modelDir: values.model,
      quant,
      ...(values.threads === undefined ? {} : { threads: int('threads', values.threads) }),
      promptTokens: int('prompt-tokens', values['prompt-tokens']),
      decodeTokens: int('decode-tokens', values['decode-tokens']),
      streams: int('streams', values.streams),
      hopDelaysMs: values['hop-delays'].split(',').map((s) => int('hop-delays', s.trim())),
      onProgress: progress,
    });
    process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBenchCluster(r) + '\n');
    return 0;
  }

  const { benchEngine, formatBench } = await import('../runtime/bench.ts');
  const r = await benchEngine({
    dir: values.model,
    quant,
    stages: int('stages', values.stages),
    promptTokens: int('prompt-tokens', values['prompt-tokens']),
    decodeTokens: int('decode-tokens', values['decode-tokens']),
    threads: values.threads === undefined ? os.availableParallelism() : int('threads', values.threads),
    profile: values.profile,
  });
  process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatBench(r) + '\n');
  return 0;
}
