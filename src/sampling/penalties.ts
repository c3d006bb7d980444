// Logit processors that run before temperature and truncation, in this order:
//   1. logit_bias (OpenAI: added to the logits before sampling; −100 bans, +100 forces in practice)
//   2. repetition penalty (Keskar et al. 2019, CTRL; HF RepetitionPenaltyLogitsProcessor semantics:
//      every distinct token of prompt + generated, positive logits divided, negative multiplied)
//   3. presence / frequency penalties (OpenAI semantics over generated tokens only:
//      logit −= count × frequency + (count > 0) × presence)

/** Stamps instead of a cleared boolean array: "seen in this call" is stamp[id] === epoch. */
let stamp = new Uint32Array(0);
let epoch = 0;

export function applyRepetitionPenalty(w: Float32Array, history: ArrayLike<number>, penalty: number): void {
  if (stamp.length < w.length) { stamp = new Uint32Array(w.length); epoch = 0; }
  if (++epoch === 0xffffffff) { stamp.fill(0); epoch = 1; }
  for (let i = 0; i < history.length; i++) {
    const t = history[i]!;
    if (t < 0 || t >= w.length || stamp[t] === epoch) continue;
    stamp[t] = epoch;
    const v = w[t]!;
    w[t] = v > 0 ? v / penalty : v * penalty;
  }
}

export function applyPresenceFrequency(w: Float32Array, history: ArrayLike<number>, promptLen: number, presence: number, frequency: number): void {
  const counts = new Map<number, number>();
  for (let i = Math.max(0, promptLen); i < history.length; i++) {
    const t = history[i]!;
    if (t >= 0 && t < w.length) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  for (const [t, c] of counts) w[t] = w[t]! - c * frequency - presence;
}

export function applyLogitBias(w: Float32Array, bias: Readonly<Record<number, number>>): void {
  for (const key of Object.keys(bias)) {
    const id = Number(key);
    const b = bias[id];
    if (b !== undefined && Number.isInteger(id) && id >= 0 && id < w.length) w[id] = w[id]! + b;
  }
}
