// The planner's memory figure for layer ranges of a checkpoint (int4, the served context's KV
// reserve and rotary tables), to set beside what a worker holding that range measures resident.
//   node --import tsx bench/plan-figure.ts MODEL_DIR 0:12 12:28 [--context N]
import { DEFAULT_MAX_CONTEXT } from '../src/cli/served-model.ts';
import { kvReserveTokens, modelCostsFromCheckpoint, stageBytes } from '../src/cluster/index.ts';
import { stageWeightBytes } from '../src/cluster/model-costs.ts';
import { openCheckpoint } from '../src/model/index.ts';

const args = process.argv.slice(2);
const dir = args[0];
if (dir === undefined) throw new Error('usage: plan-figure.ts MODEL_DIR START:END... [--context N]');
const ci = args.indexOf('--context');
const ckpt = openCheckpoint(dir);
const context = Math.min(ci >= 0 ? Number(args[ci + 1]) : DEFAULT_MAX_CONTEXT, ckpt.config.maxPositions);
const cost = modelCostsFromCheckpoint(ckpt, { quant: 'int4', kvTokens: kvReserveTokens(context), maxPositions: context });
const mb = (b: number): string => `${(b / 1e6).toFixed(0)} MB`;
console.log(`int4 weights as built, whole model: ${mb(stageWeightBytes(cost, 0, cost.numLayers))}; context ${context}, KV reserve ${kvReserveTokens(context)} tokens`);
for (const r of args.slice(1).filter((a, i, all) => a.includes(':') && all[i] !== '--context')) {
  const [s, e] = r.split(':').map(Number) as [number, number];
  console.log(`  layers [${s}, ${e}): planner ${mb(stageBytes(cost, s, e))} (weights as built ${mb(stageWeightBytes(cost, s, e))})`);
}
