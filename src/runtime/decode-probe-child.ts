// Entry of the process that runs the decode probe for a worker (decode-probe.ts probeDecodeApart):
// prints its result as one JSON line and exits, so the probe's 54 MB of weights, their prepacked copy
// and onnxruntime's arena leave nothing behind in the worker's heap.
import { probeDecode } from './decode-probe.ts';

const threads = Number(process.env['HEARTH_DECODE_PROBE_THREADS'] ?? '1');
probeDecode(Number.isInteger(threads) && threads > 0 ? threads : 1).then(
  (r) => { process.stdout.write(`${JSON.stringify(r)}\n`); },
  (e: unknown) => { process.stderr.write(`decode probe: ${(e as Error).message}\n`); process.exitCode = 1; },
);
