// GGUF tensor decoding (pure, no sockets): every ggml type hearth reads decodes to the floats of
// ggml's reference dequantizer, and Q4_0 becomes hearth's int4 (MatMulNBits, block 32) with no loss.
import { createHash } from 'node:crypto';
import t from 'tap';
import { dequantize, GGML, ggmlByteSize } from '../src/gguf/index.ts';
import { dequantizeInt4, quantizeInt4 } from '../src/model/quant-int4.ts';
import { encode, GGML as BENCH_GGML } from '../bench/llama-cpp/src/ggml-quant.ts';

// One block of random bytes per type (fp16 scale fields kept finite) and the sha256 of the
// little-endian fp32 values llama.cpp's gguf-py (gguf.quants.dequantize, a numpy port of
// ggml-quants.c) decodes it to. Regenerate: bench/llama-cpp/kquant-oracle.py.
const ORACLE: Record<string, [string, string]> = {
  Q4_0: ['8b0ae5f1a94106a0956a26afbccdafe562f9', 'e6f3ae3a9ead4eb52ef685e5244d3db04eed55e63511daa53b46eb233097cc29'],
  Q4_1: ['f023d81b5fa461698f35e2b6b9f839ecdb83b518', '3964f053021d9340b2726e9af20440d7a25b817c0de4d93b5c0395964907e64f'],
  Q5_0: ['b9328c5299cda6b83324aa344f59de71d99ba825106d', 'e69499ea2975fefe231d09b32995a7b4664fa49afab22c7d59c5105150619ab5'],
  Q5_1: ['9930ea13a296ea4ad101eda2a2f2fc4a30626e3fa44c456e', '72ee4b744217a7ac08a3b89226713c2c97c54d86570903f9aa4e0fa215dd1c9c'],
  Q8_0: ['8d32b8647cc4f71ff1eeedda13e880e24812d8d227076279733b4bcd42eafacd2007', '0fab7c05639b12dbcbb3196ac531ad83105cc90d59a9ffd7ec98c50880d7c5bf'],
  Q4_K: ['201a353abbe1fd1f729015a6fd2ad726175ddf515b2c5168a1bcf4af41c282d56c1194e40440ae9f6f06b7f6b225d6ba3a37b5dfe88f78938ce32f1e984ac635dbf6df693c1359d124f91d6a0be19603d2c3c16e44ddcfb211dd8dfdb53dc0315070604f8373997879c20f7d6a54a2f9672f22660341fe8927565f40ac32940e92047b64d283c46dd86b342cda4307a9', '94bc044a4f6d6f7bbc648db6d4407d2461e6c5805ef9131f8344de2f3f1da7e6'],
  Q5_K: ['6d03e028df16cc05a76f2b347f4f4fd87ce149af29204bc76d086ee60edec80b7b9c3168477dedbe558571bc06e209b10a20c923cc005220a393d66df06f71867115665153e279b09d21e3385060e255b76ce1199a7aff80cc49eabd37b2d6f95c24973da30bbca25f44f70c5aa2828055d986e25435e51039d9c2616817051f9a87e9871411ccd9bcd0c977dbf01abeba6bec4d9cc6c8d5e6aa803c156afd933252355b785a75937987504572ecd387', 'd9f7956fbf28f17021cc8fcc0d76a71ec905df422c535e5de6aa85ce65c728f8'],
  Q6_K: ['7b6a66b4b62a3869991c200774eb7ebe4a1f4015ed5733d9f1abf849be2a7e325bd4e5a128ec2ef8afa0a6b3fb0ff6195a2d914d703460a8e24b762f7457313dbf48407ee85e0a37c0834688afdb2223c7d62e4b98232ef1927571c2289dd62056af1350ee9b98e96a9352fa2eba6b2adb764ceb59244954c52ea9239a282336defbcc867350e9fc57859ef5747ac917bd38115ed0b775dc291bd7f2f97dea4cd161133fc757c9f3921aa961a50a16c031dbd25795028b4352a531e415f28a8292434786c6fb3e294fede241ab773d68ce01', 'a9a78fcc3f58d9205b63eb025f3b4ddf756ae78eddd33c5e81d19c570119467c'],
};

t.test('each quantized type decodes to the floats ggml decodes it to', async (t) => {
  for (const [name, [hex, sha]] of Object.entries(ORACLE)) {
    const type = (GGML as Record<string, number>)[name] as number;
    const raw = Buffer.from(hex, 'hex');
    const n = name.endsWith('_K') ? 256 : 32;
    t.equal(ggmlByteSize(type, n), raw.length, `${name}: ${raw.length} bytes per ${n}-value block`);
    const out = new Float32Array(n);
    dequantize(type, raw, n, out);
    t.equal(createHash('sha256').update(new Uint8Array(out.buffer)).digest('hex'), sha, `${name} matches gguf-py's dequantize`);
  }
});

t.test('Q4_0 maps onto MatMulNBits block 32 without loss', async (t) => {
  const rows = 16;
  const cols = 256;
  let s = 5;
  const w = Float32Array.from({ length: rows * cols }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * (1 + (s % 7)));
  const q40 = new Uint8Array(ggmlByteSize(GGML.Q4_0, w.length) as number);
  encode(BENCH_GGML.Q4_0, w, q40);
  const decoded = new Float32Array(w.length);
  dequantize(GGML.Q4_0, q40, w.length, decoded);
  const int4 = quantizeInt4(decoded, rows, cols, 32);
  const back = dequantizeInt4(int4);
  let differ = 0;
  for (let i = 0; i < back.length; i++) if (back[i] !== decoded[i]) differ++;
  t.equal(differ, 0, 'hearth int4 at block 32 holds exactly the Q4_0 values');
  // Same scales as stored: Q4_0's fp16 d is hearth's fp32 scale.
  const dv = new DataView(q40.buffer);
  const d0 = new Float32Array(1);
  dequantize(GGML.F16, new Uint8Array(q40.buffer, 0, 2), 1, d0);
  t.equal(int4.scales[0], d0[0], 'first block: the scale is the stored fp16 d');
  t.equal(dv.byteLength, rows * (cols / 32) * 18, 'Q4_0 is 18 bytes per 32 values');
});

t.test('a type hearth does not decode is refused by name', async (t) => {
  t.throws(() => dequantize(GGML.Q2_K, new Uint8Array(84), 256, new Float32Array(256)), /Q2_K/);
  t.throws(() => dequantize(GGML.Q4_0, new Uint8Array(18), 31, new Float32Array(32)), /whole 32-value blocks/);
});

t.test('the bench\'s Q4_K_M encoders (Q4_K, Q6_K, Q5_0) write what the decoders read', async (t) => {
  let s = 11;
  const w = Float32Array.from({ length: 4096 }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1);
  const rms = (a: Float32Array): number => Math.sqrt(a.reduce((x, v) => x + v * v, 0) / a.length);
  // Round-trip error relative to the weights' RMS: a layout mismatch would be ~1 or worse.
  for (const [name, bound] of [['Q4_K', 0.12], ['Q6_K', 0.03], ['Q5_0', 0.06]] as const) {
    const bytes = new Uint8Array(ggmlByteSize(GGML[name], w.length) as number);
    encode(BENCH_GGML[name], w, bytes);
    const back = new Float32Array(w.length);
    dequantize(GGML[name], bytes, w.length, back);
    const err = rms(back.map((v, i) => v - (w[i] as number)));
    t.ok(err / rms(w) < bound, `${name}: relative RMS error ${(err / rms(w)).toFixed(4)} < ${bound}`);
  }
});
