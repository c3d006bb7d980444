// Issue 24: a GGUF's quantized blocks carried into MatMulNBits as they are. Pure part: the carried
// layout reads back to the very values ggml decodes (exactly where there is no offset; offsets add
// one fp32 rounding of a sum); graph part: see gguf-carry-graph.test.ts.
import t from 'tap';
import { dequantize, GGML, ggmlByteSize } from '../src/gguf/index.ts';
import { carryRows, dequantizeCarried } from '../src/gguf/carry-blocks.ts';

/** Random raw blocks whose fp16 fields are finite (exponent bits kept away from 31). */
function randomBlocks(type: number, rows: number, cols: number, seed: number): Uint8Array {
  const raw = new Uint8Array(ggmlByteSize(type, rows * cols) as number);
  let s = seed;
  for (let i = 0; i < raw.length; i++) raw[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  // Every fp16 field: clear the top exponent bit so it is finite and of modest size.
  const fp16At: Record<number, { size: number; at: number[] }> = {
    [GGML.Q4_0]: { size: 18, at: [0] }, [GGML.Q4_1]: { size: 20, at: [0, 2] }, [GGML.Q5_0]: { size: 22, at: [0] },
    [GGML.Q5_1]: { size: 24, at: [0, 2] }, [GGML.Q8_0]: { size: 34, at: [0] }, [GGML.Q4_K]: { size: 144, at: [0, 2] },
    [GGML.Q5_K]: { size: 176, at: [0, 2] }, [GGML.Q6_K]: { size: 210, at: [208] },
  };
  const f = fp16At[type]!;
  for (let o = 0; o < raw.length; o += f.size) for (const a of f.at) raw[o + a + 1]! &= 0x3b;
  return raw;
}

const TYPES = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K'] as const;

t.test('every carried type reads back as ggml decodes it', async (t) => {
  for (const name of TYPES) {
    const type = GGML[name];
    const rows = 6;
    const cols = 512;
    const raw = randomBlocks(type, rows, cols, 17 + type);
    const want = new Float32Array(rows * cols);
    dequantize(type, raw, rows * cols, want);
    const m = carryRows(type, raw, rows, cols);
    const got = dequantizeCarried(m);
    let worst = 0;
    let bitExact = true;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i]) bitExact = false;
      worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    if (m.offsets) t.ok(worst <= scale * 2 ** -22, `${name} (${m.bits}-bit, block ${m.block}, offsets): largest difference ${worst} of values up to ${scale} (fp32 rounding of (q-z)·d + offset)`);
    else t.ok(bitExact, `${name} (${m.bits}-bit, block ${m.block}): bit for bit`);
  }
});
