// A quick matmul probe for the planner's per-node speed. It measures this device's float
// throughput in plain JS (no onnxruntime here: only runtime/ imports it), which tracks the relative
// speed of devices well enough to split layers; the figure is rounded to quarter-octaves so that
// measurement noise between two runs of the same machine does not reshape the plan.

const M = 64;
const K = 256;
const N = 256;

function matmulOnce(a: Float32Array, b: Float32Array, c: Float32Array): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) c[i * N + j] = 0;
    for (let k = 0; k < K; k++) {
      const av = a[i * K + k] as number;
      const bo = k * N;
      const co = i * N;
      for (let j = 0; j < N; j++) c[co + j] = (c[co + j] as number) + av * (b[bo + j] as number);
    }
  }
}

/** GFLOP/s, best of `rounds`, rounded to a quarter-octave (2^(k/4)). */
export function measureSpeed(rounds = 5): number {
  const a = new Float32Array(M * K).map((_, i) => ((i * 7) % 13) / 13);
  const b = new Float32Array(K * N).map((_, i) => ((i * 5) % 11) / 11);
  const c = new Float32Array(M * N);
  matmulOnce(a, b, c); // warm-up: let the JIT compile it
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    matmulOnce(a, b, c);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (dt < best) best = dt;
  }
  const gflops = (2 * M * K * N) / best / 1e9;
  return roundQuarterOctave(gflops);
}

export function roundQuarterOctave(x: number): number {
  if (!(x > 0)) return 0;
  return Number((2 ** (Math.round(Math.log2(x) * 4) / 4)).toPrecision(3));
}
