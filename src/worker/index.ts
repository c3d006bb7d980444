export { WorkerNode, makeNodeId, type WorkerNodeOptions } from './node.ts';
export { measureSpeed, roundQuarterOctave } from './speed-probe.ts';
export { StageRunner, type StageWork, type StageWorkResult } from './stage-runner.ts';
