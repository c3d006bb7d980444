// buildShardGraph: the ONNX model for layers [start, end) of a checkpoint.
//
// Inputs:  input_ids int32 [B,S] (first stage) or hidden_in fp32 [B,S,H]; the attention inputs of
//          the chosen kind (see attention.ts); past_key.i / past_value.i fp32 [B,Hkv,P,D] per layer.
// Outputs: hidden_out [B,S,H] (inner stages) or logits [B*R,V] of each item's last R = logit_rows positions (last
//          stage); present_key.i / present_value.i.
// Activations run as 2-D [B*S, H] so fp32 projections can be Gemm(transB=1) over the HF [out, in]
// weights exactly as stored — read in place from the checkpoint file when it is fp32 (no copy, no
// transpose); int4 projections are MatMulNBits over weights quantized here. The residual stream
// runs through SkipSimplifiedLayerNormalization (add + RMSNorm in one kernel, sum handed back).

import type { Checkpoint } from '../types.ts';
import type { ShardBuildSpec } from '../shard-build-spec.ts';
import { defaultInt4ZeroPoints, INT4_BLOCK_SIZES, zeroPointCols } from '../quant-int4.ts';
import { defaultVocabBits, raggedBits } from '../quant-int8.ts';
import { EMBED_TOKENS, FINAL_NORM, isMoeLayer, layerTensorNames, lmHeadName } from '../tensor-names.ts';
import { DT, MS_DOMAIN, GraphBuilder, type ExternalFile } from './graph.ts';
import { attention, attentionContext, type AttentionKind } from './attention.ts';
import { WeightReader } from './weights.ts';
import { moeMlp } from './moe.ts';
import { carriesBlocks } from '../carried-blocks.ts';
import { carriedFused, carriedProduct, type CarryContext } from './carried-graph.ts';

export interface BuildShardOptions {
  /** 'auto' picks fused (any even head size); gqa (head size a multiple of 16) and plain stay selectable. */
  readonly attention?: AttentionKind | 'auto';
  /** MatMulNBits accuracy_level: 4 = int8 activations (fastest on AVX-512 VNNI), 0 = fp32. */
  readonly accuracyLevel?: number;
  /**
   * Write each prepared weight into this folder as w<i>.bin as soon as it is made (then load the
   * model from a file there): weights never accumulate in memory, and onnxruntime maps files far
   * faster than it copies in-memory external data. Without it, `externalData` carries the bytes.
   */
  readonly externalDir?: string;
  /** Rows per lm_head slice (default: as many as fit in 128 MB of fp32). */
  readonly headSliceRows?: number;
  /**
   * The name under which a checkpoint file is reachable next to the model (e.g. a hard link in
   * externalDir), or null. When given, fp32 tensors are referenced in place instead of copied.
   */
  readonly mapFile?: (file: string) => string | null;
  /** int4 block size along K (default 32: onnxruntime-genai's CPU default; 64/128 trade accuracy for speed). */
  readonly int4Block?: number;
  /** Element type of the fused path's KV cache (default float32; float16 halves its memory). */
  readonly kvDtype?: KvDtype;
  /** int4 models: bits of the vocabulary matrices, the embedding table and the lm_head (8 = what a
   *  Q4_0 GGUF keeps its token embedding at). Default defaultVocabBits(). */
  readonly vocabBits?: 4 | 8;
  /** int4 models: quantize the 4-bit weights (layers, and a 4-bit embedding/head) with uint4 zero
   *  points per block (asymmetric, as Q4_1) instead of the implicit 8. Default defaultInt4ZeroPoints(). */
  readonly int4ZeroPoints?: boolean;
}

export const KV_DTYPES = ['float32', 'float16'] as const;
export type KvDtype = (typeof KV_DTYPES)[number];

export interface ShardGraph {
  readonly model: Uint8Array;
  readonly externalData: ExternalFile[];
  readonly attention: AttentionKind;
  /**
   * Bytes of weights every step reads (resident while serving). An embedding table used only for
   * lookups is not counted: it is mapped from the file and only the looked-up rows are touched.
   */
  readonly weightBytes: number;
  /** Bytes of lookup-only embedding tables (mapped, not counted in weightBytes). */
  readonly lookupBytes: number;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

export const IO = {
  inputIds: 'input_ids',
  hiddenIn: 'hidden_in',
  hiddenOut: 'hidden_out',
  logits: 'logits',
  /** Last stage: every position's hidden state after the final norm [B,S,H] (what embeddings pool;
   *  fetched only by embedding steps). */
  hiddenNormed: 'hidden_normed',
  /** Last stage: int64 [1], how many final positions of each item get logits (1 for a plain
   *  step; k+1 when a step verifies k draft tokens). */
  logitRows: 'logit_rows',
  pastKey: (l: number) => `past_key.${l}`,
  pastValue: (l: number) => `past_value.${l}`,
  presentKey: (l: number) => `present_key.${l}`,
  presentValue: (l: number) => `present_value.${l}`,
  /** fused attention: the step's own K/V [B, S, Hkv, D] (the caller appends them to its cache). */
  newKey: (l: number) => `new_key.${l}`,
  newValue: (l: number) => `new_value.${l}`,
} as const;

export function chooseAttention(headDim: number, pref: AttentionKind | 'auto' = 'auto'): AttentionKind {
  if (pref !== 'auto') return pref;
  return headDim % 2 === 0 ? 'fused' : 'plain';
}

const ONNX_DTYPE = { F32: DT.float, F16: DT.float16, BF16: DT.bfloat16 } as const;

export function buildShardGraph(ckpt: Checkpoint, spec: ShardBuildSpec, opts: BuildShardOptions = {}): ShardGraph {
  const cfg = ckpt.config;
  const { start, end, quant } = spec;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start && end <= cfg.numLayers)) {
    throw new RangeError(`layer range [${start}, ${end}) is not inside [0, ${cfg.numLayers})`);
  }
  const first = start === 0;
  const last = end === cfg.numLayers;
  const kind = chooseAttention(cfg.headDim, opts.attention);
  const accuracyLevel = opts.accuracyLevel ?? 4;
  const block = opts.int4Block ?? 32;
  const zp = quant === 'int4' && (opts.int4ZeroPoints ?? defaultInt4ZeroPoints());
  /** The zero-point initializer of an asymmetric int4 matrix: [rows, ceil(blocks / 2)] uint8. */
  const zeroInit = (tag: string, m: { rows: number; blocks: number; zeros?: Uint8Array }, countBytes = true): string[] =>
    m.zeros === undefined ? [] : [g.init(`${tag}.zero_points`, DT.uint8, [m.rows, zeroPointCols(m.blocks)], m.zeros, countBytes)];
  if (!(INT4_BLOCK_SIZES as readonly number[]).includes(block)) throw new RangeError(`int4 block size must be one of ${INT4_BLOCK_SIZES.join(', ')}; got ${block}`);
  const { hiddenSize: h, numHeads: hq, numKvHeads: hkv, headDim: d, rmsNormEps: eps } = cfg;
  const g = new GraphBuilder(opts.externalDir ?? null);
  const w = new WeightReader(ckpt);
  const eps32 = { float: eps };
  const mapFile = opts.mapFile ?? (() => null);
  // A checkpoint that carries its own quantized blocks (a GGUF) builds its int4 graph in the file's
  // formats, not requantized (issue 24; carried-graph.ts).
  const carryCkpt = quant === 'int4' && carriesBlocks(ckpt) ? ckpt : null;
  const carry = (): CarryContext => ({ g, w, ckpt: carryCkpt as NonNullable<typeof carryCkpt>, nbits });

  /** In-place reference to a checkpoint tensor, or null when it can't be mapped with this dtype. */
  const mapped = (name: string, dtypes: readonly string[] = ['F32'], countBytes = true, as = name): string | null => {
    const info = ckpt.info(name);
    if (!dtypes.includes(info.dtype)) return null;
    const loc = mapFile(info.file);
    if (loc === null) return null;
    return g.external(as, ONNX_DTYPE[info.dtype], info.shape, loc, info.byteStart, info.byteEnd - info.byteStart, countBytes);
  };
  /** fp32 tensor: in place when possible, else converted and written. */
  const f32 = (name: string, countBytes = true, as = name): string => {
    const m = mapped(name, ['F32'], countBytes, as);
    if (m !== null) return m;
    return g.init(as, DT.float, ckpt.info(name).shape, w.tensor(name), countBytes);
  };

  /**
   * x [T, K] times the HF weights `names` ([n_i, K] each): one output per name. int4 fuses them
   * into one MatMulNBits and splits; fp32 reads each in place with Gemm(transB) when the
   * checkpoint is fp32, else fuses a converted copy.
   */
  /** int4: one MatMulNBits over the stacked weights (output [..., sum n_i]). */
  const fusedInt4 = (x: string, names: readonly string[], biases: readonly string[] | null, tag: string): string => {
    if (carryCkpt !== null) {
      const fused = carriedFused(carry(), x, bs, names, tag, biases ? () => g.init(`${tag}.bias`, DT.float, [names.reduce((a, n) => a + (ckpt.info(n).shape[0] ?? 0), 0)], w.fusedVector(biases)) : undefined);
      if (fused !== null) return fused;
      const ys = names.map((n, i) => carriedProduct(carry(), x, bs, n, `${tag}.${i}`, undefined, biases?.[i] !== undefined ? f32(biases[i] as string) : undefined));
      return ys.length === 1 ? (ys[0] as string) : g.op('Concat', ys, { axis: -1 });
    }
    // A K that 32 does not divide is quantized at 8 bits: its last block is padded, and llama.cpp
    // keeps such a tensor at F16 in a Q4_0 file (stories260k's down_proj, K = 172), so at 4 bits
    // hearth would lose to Q4_0 there on precision it could have kept (issue 25). Real models'
    // dimensions are multiples of 256; this only touches toy shapes.
    const bits = raggedBits(ckpt.info(names[0] as string).shape[1] ?? 0);
    const m = bits === 8 ? w.int8(names, undefined, block) : w.fusedInt4(names, undefined, block, zp);
    const b = g.init(`${tag}.qweight`, DT.uint8, [m.rows, m.blocks, bits === 8 ? block : block / 2], m.packed);
    const s = g.init(`${tag}.scales`, DT.float, [m.rows * m.blocks], m.scales);
    const zeros = zeroInit(tag, m);
    const rest = [b, s, ...zeros];
    // MatMulNBits inputs: A, B, scales, zero_points, g_idx, bias.
    if (biases) rest.push(...(zeros.length === 0 ? [''] : []), '', g.init(`${tag}.bias`, DT.float, [m.rows], w.fusedVector(biases)));
    return nbits(x, rest, { K: m.cols, N: m.rows }, bs, bits);
  };
  const project = (x: string, names: readonly string[], biases: readonly string[] | null, tag: string): string[] => {
    const sizes = names.map((n) => ckpt.info(n).shape[0] ?? 0);
    const split = (y: string): string[] => (names.length === 1 ? [y] : g.node('Split', [y, g.i64(sizes)], names.length, { axis: -1 }));
    if (carryCkpt !== null && names.length > 1) {
      const fused = carriedFused(carry(), x, bs, names, tag, biases ? () => g.init(`${tag}.bias`, DT.float, [sizes.reduce((a, b) => a + b, 0)], w.fusedVector(biases)) : undefined);
      if (fused !== null) return split(fused);
    }
    if (carryCkpt !== null) return names.map((n, i) => carriedProduct(carry(), x, bs, n, `${tag}.${i}`, undefined, biases?.[i] !== undefined ? f32(biases[i] as string) : undefined));
    if (quant === 'int4') return split(fusedInt4(x, names, biases, tag));
    const inPlace = names.every((n) => ckpt.info(n).dtype === 'F32' && mapFile(ckpt.info(n).file) !== null);
    if (inPlace) {
      return names.map((n, i) => {
        const ins = [x, mapped(n) as string];
        const bias = biases?.[i];
        if (bias !== undefined) ins.push(f32(bias));
        return g.op('Gemm', ins, { transB: 1 });
      });
    }
    const fused = w.fusedRows(names);
    const ins = [x, g.init(`${tag}.weight`, DT.float, [fused.rows, fused.cols], fused.data)];
    if (biases) ins.push(g.init(`${tag}.bias`, DT.float, [fused.rows], w.fusedVector(biases)));
    return split(g.op('Gemm', ins, { transB: 1 }));
  };

  // --- input: [B,S] ids or [B,S,H] hidden; `bs` = [B,S] for reshaping back to 3-D --------------------
  let x3: string;
  let lookupBytes = 0;
  let embedF32: string | null = null;
  /** int4 table [V, K/2] + scales [V, K/block] of the embedding, when this graph has one (see below). */
  let embedInt4: { q: string; s: string; z: { name: string; data: Uint8Array } | null; blocks: number; bits: 4 | 8; block: number } | null = null;
  const vocabBits = quant === 'int4' ? (opts.vocabBits ?? defaultVocabBits()) : 4;
  /** Bytes a vocabulary block's values take: block/2 at 4 bits, block at 8. */
  const vocabBlockBytes = vocabBits === 8 ? block : block / 2;
  if (first) {
    const ids = g.input(IO.inputIds, DT.int32, ['batch', 'seq']);
    const info = ckpt.info(EMBED_TOKENS);
    const embedCarried = carryCkpt?.carriedFormat(EMBED_TOKENS) ?? null;
    if (carryCkpt !== null && embedCarried !== null && !embedCarried.offsets) {
      // The file's own blocks as the lookup table (GatherBlockQuantized takes no offsets: a
      // K-quant table is gathered from its exact fp32 values below instead).
      const m = carryCkpt.carried(EMBED_TOKENS) as NonNullable<ReturnType<typeof carryCkpt.carried>>;
      const qw = g.init(`${EMBED_TOKENS}.qweight`, DT.uint8, [m.rows, (m.blocks * m.block * m.bits) / 8], m.packed, false);
      const sc = g.init(`${EMBED_TOKENS}.scales`, DT.float, [m.rows, m.blocks], m.scales, false);
      embedInt4 = { q: qw, s: sc, z: null, blocks: m.blocks, bits: m.bits, block: m.block };
      lookupBytes += m.packed.byteLength + m.scales.byteLength;
      x3 = g.op('GatherBlockQuantized', [qw, ids, sc], { gather_axis: 0, quantize_axis: 1, block_size: m.block, bits: m.bits }, MS_DOMAIN);
    } else if (carryCkpt === null && quant === 'int4' && h % block === 0) {
      // int4 models look tokens up in an int4 table (GatherBlockQuantized, MatMulNBits' layout):
      // a fp32 table mapped in place costs no load time, but every lookup faults in the kernel's
      // fault-around window (64 KB, ~18 rows of a 0.5B), so a long prompt made up to the whole
      // 545 MB of a 0.5B's table resident. int4 is 1/8 of that at most, and a tied head reads the
      // same bytes (below), so it costs nothing extra to build.
      const m = vocabBits === 8 ? w.int8(EMBED_TOKENS, undefined, block) : w.fusedInt4([EMBED_TOKENS], undefined, block, zp);
      const qw = g.init(`${EMBED_TOKENS}.qweight`, DT.uint8, [m.rows, m.blocks * vocabBlockBytes], m.packed, false);
      const sc = g.init(`${EMBED_TOKENS}.scales`, DT.float, [m.rows, m.blocks], m.scales, false);
      const zeros = zeroInit(EMBED_TOKENS, m, false);
      // The zero points are kept (a copy: the reader's scratch is reused) in case they went inline.
      embedInt4 = { q: qw, s: sc, z: zeros[0] === undefined ? null : { name: zeros[0], data: (m.zeros as Uint8Array).slice() }, blocks: m.blocks, bits: vocabBits, block };
      lookupBytes += m.packed.byteLength + m.scales.byteLength + (m.zeros?.byteLength ?? 0);
      x3 = g.op('GatherBlockQuantized', [qw, ids, sc, ...zeros], { gather_axis: 0, quantize_axis: 1, block_size: block, bits: vocabBits }, MS_DOMAIN);
    } else {
      // The table is looked up in place: only the rows of tokens seen are ever paged in. f16/bf16
      // tables are gathered as stored and cast, which is exactly the fp32 value the reference uses.
      const inPlace = mapFile(info.file) !== null;
      const table = inPlace
        ? (mapped(EMBED_TOKENS, ['F32', 'F16', 'BF16'], false) as string)
        : g.init(EMBED_TOKENS, DT.float, info.shape, w.tensor(EMBED_TOKENS), false);
      if (!inPlace || info.dtype === 'F32') embedF32 = table;
      lookupBytes += info.shape.reduce((a, b) => a * b, 1) * (inPlace && info.dtype !== 'F32' ? 2 : 4);
      const rows = g.op('Gather', [table, ids], { axis: 0 });
      x3 = inPlace && info.dtype !== 'F32' ? g.op('Cast', [rows], { to: DT.float }) : rows;
    }
  } else {
    x3 = g.input(IO.hiddenIn, DT.float, ['batch', 'seq', h]);
  }
  const bs = g.op('Slice', [g.op('Shape', [x3]), g.i64([0]), g.i64([2])]);
  const shape3 = new Map<number, string>();
  // fp32 Gemm needs 2-D activations [B*S, H]; MatMulNBits takes [B, S, K] as is, so int4 graphs
  // stay 3-D and skip the reshapes (each node costs executor time on every decode step).
  const flat = quant !== 'int4';
  const to3d = (t: string, width: number): string => {
    if (!flat) return t;
    let s = shape3.get(width);
    if (s === undefined) {
      s = g.op('Concat', [bs, g.i64([width])], { axis: 0 });
      shape3.set(width, s);
    }
    return g.op('Reshape', [t, s]);
  };
  const to2d = (t: string, width: number): string => (flat ? g.op('Reshape', [t, g.i64([-1, width])]) : t);
  const x2 = to2d(x3, h);

  // int4 at blocks over 32: MatMulNBits computes the last row of an odd row count with its one-row
  // kernel, whose rounding differs from the two-row tiles every other row gets (measured: row 0 of
  // 1, row 2 of 3, row 4 of 5… differ from the same rows in a 16-row call; even counts are
  // row-invariant). A zero row is appended to odd counts and cut off after, so a row's bits never
  // depend on how many rows ran with it: a lone decode step, the same step in a batch and a
  // position of a verify chunk agree bit for bit. Costs one row on odd counts and four small nodes
  // per product.
  const evenRows = quant === 'int4' && block > 32;
  const rowInfo = new Map<string, { rows: string; pads: string; out: Map<number, string> }>();
  /** MatMulNBits of x ([lead..., K], lead = [B, S] given as the shape tensor `lead`). */
  const nbits = (x: string, rest: readonly string[], attrs: { K: number; N: number }, lead: string, bits = 4, blk = block): string => {
    const all = { ...attrs, bits, block_size: blk, accuracy_level: accuracyLevel };
    if (!evenRows || blk <= 32) return g.op('MatMulNBits', [x, ...rest], all, MS_DOMAIN);
    let info = rowInfo.get(lead);
    if (info === undefined) {
      const rows = g.op('Mul', [g.op('Slice', [lead, g.i64([0]), g.i64([1])]), g.op('Slice', [lead, g.i64([1]), g.i64([2])])]);
      const pads = g.op('Concat', [g.i64([0, 0]), g.op('Mod', [rows, g.i64([2])]), g.i64([0])], { axis: 0 });
      info = { rows, pads, out: new Map() };
      rowInfo.set(lead, info);
    }
    let out = info.out.get(attrs.N);
    if (out === undefined) {
      out = g.op('Concat', [lead, g.i64([attrs.N])], { axis: 0 });
      info.out.set(attrs.N, out);
    }
    const padded = g.op('Pad', [g.op('Reshape', [x, g.i64([-1, attrs.K])]), info.pads]);
    const y = g.op('MatMulNBits', [padded, ...rest], all, MS_DOMAIN);
    return g.op('Reshape', [g.op('Slice', [y, g.i64([0]), info.rows, g.i64([0])]), out]);
  };

  // --- layers ----------------------------------------------------------------------------------------
  const kvType = kind === 'fused' && opts.kvDtype === 'float16' ? DT.float16 : DT.float;
  const actx = attentionContext(g, cfg, kind, kvType);
  let residual = x2;
  let normed = g.op('SimplifiedLayerNormalization', [x2, f32(layerTensorNames(start).inputNorm)], { axis: -1, epsilon: eps32 });
  let pendingOut: string | null = null;
  for (let l = start; l < end; l++) {
    const n = layerTensorNames(l);
    const li = l - start;
    const fusedKv = kind === 'fused';
    const pastDims = fusedKv ? ['past', 'batch', hkv, d] : ['batch', hkv, 'past', d];
    const io = {
      pastKey: g.input(IO.pastKey(li), kvType, pastDims),
      pastValue: g.input(IO.pastValue(li), kvType, pastDims),
      presentKey: fusedKv ? IO.newKey(li) : IO.presentKey(li),
      presentValue: fusedKv ? IO.newValue(li) : IO.presentValue(li),
    };
    const outDims = fusedKv ? ['batch', 'seq', hkv, d] : ['batch', hkv, 'present', d];
    g.output(io.presentKey, kvType, outDims);
    g.output(io.presentValue, kvType, outDims);
    if (pendingOut !== null) {
      // Previous layer's MLP output + residual, then this layer's input norm, in one kernel.
      const outs = g.node('SkipSimplifiedLayerNormalization', [pendingOut, residual, f32(n.inputNorm)], [g.name('ln1'), '', '', g.name('res')], { epsilon: eps32 }, MS_DOMAIN);
      normed = outs[0] as string;
      residual = outs[3] as string;
    }
    const qkvNames = [n.q, n.k, n.v];
    const qkvBias = cfg.attentionBias ? [n.qBias, n.kBias, n.vBias] : null;
    let ctx3: string;
    if (!flat && kind !== 'plain' && !cfg.qkNorm) {
      // The fused int4 projection goes in packed (GroupQueryAttention takes it as is: no Split).
      ctx3 = attention(g, cfg, actx, io, { qkv: fusedInt4(normed, qkvNames, qkvBias, `l${l}.qkv`) });
    } else {
      let [q, k, v] = project(normed, qkvNames, qkvBias, `l${l}.qkv`) as [string, string, string];
      if (cfg.qkNorm) {
        // qwen3: RMSNorm per head on q and k, before RoPE.
        const norm = (t: string, heads: number, gamma: string): string =>
          g.op('Reshape', [
            g.op('SimplifiedLayerNormalization', [g.op('Reshape', [t, g.i64(flat ? [-1, heads, d] : [0, 0, heads, d])]), f32(gamma)], { axis: -1, epsilon: eps32 }),
            g.i64(flat ? [-1, heads * d] : [0, 0, heads * d]),
          ]);
        q = norm(q, hq, n.qNorm);
        k = norm(k, hkv, n.kNorm);
      }
      ctx3 = attention(g, cfg, actx, io, { q: to3d(q, hq * d), k: to3d(k, hkv * d), v: to3d(v, hkv * d) });
    }
    const ctx = to2d(ctx3, hq * d);
    const [attnOut] = project(ctx, [n.o], null, `l${l}.o`) as [string];
    const outs = g.node('SkipSimplifiedLayerNormalization', [attnOut, residual, f32(n.postNorm)], [g.name('ln2'), '', '', g.name('res')], { epsilon: eps32 }, MS_DOMAIN);
    residual = outs[3] as string;
    if (isMoeLayer(cfg, l)) {
      // Routed experts (qwen3_moe, mixtral): see moe.ts.
      pendingOut = moeMlp({ g, w, ckpt, quant, block, accuracyLevel }, l, outs[0] as string);
      continue;
    }
    const [gate, up] = project(outs[0] as string, [n.gate, n.up], null, `l${l}.gate_up`) as [string, string];
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    [pendingOut] = project(act, [n.down], null, `l${l}.down`) as [string];
  }

  // --- stage output ----------------------------------------------------------------------------------
  const final3 = to3d(g.op('Add', [pendingOut ?? x2, residual]), h);
  if (!last) {
    g.node('Identity', [final3], [IO.hiddenOut]);
    g.output(IO.hiddenOut, DT.float, ['batch', 'seq', h]);
  } else {
    // Only the last logit_rows positions of each item need logits (one, unless the step verifies
    // draft tokens): slice before the norm and the big matmul.
    const rowsIn = g.input(IO.logitRows, DT.int64, [1]);
    const lastPos = to2d(g.op('Slice', [final3, g.op('Neg', [rowsIn]), g.i64([Number.MAX_SAFE_INTEGER]), g.i64([1])]), h); // [B*R,H] or [B,R,H]
    const finalNorm = f32(FINAL_NORM);
    const normedLast = g.op('SimplifiedLayerNormalization', [lastPos, finalNorm], { axis: -1, epsilon: eps32 });
    // Embeddings (issue 21) pool the final-normed states of every position: one more norm over
    // [B,S,H], cheap beside the layers; the session copies it out only when a step asks for it.
    g.node('SimplifiedLayerNormalization', [final3, finalNorm], [IO.hiddenNormed], { axis: -1, epsilon: eps32 });
    g.output(IO.hiddenNormed, DT.float, ['batch', 'seq', h]);
    // int4 (3-D): the head's rows are [B, R] (R logit rows per item), not the stage's [B, S].
    let lead: string | null = null;
    const headLead = (): string => (lead ??= g.op('Slice', [g.op('Shape', [normedLast]), g.i64([0]), g.i64([2])]));
    const head = lmHeadName(cfg);
    // The [V, H] head runs in row slices of at most 128 MB (fp32) whose logits are concatenated:
    // onnxruntime prepacks one initializer at a time and drops its source after, so slicing caps
    // the load-time overlap of source and packed copy (a 0.5B vocabulary's 545 MB head would
    // otherwise add that much to the peak RSS), and int4 quantizes one slice at a time.
    // fp32 reads the table as stored with Gemm(transB); slices of a tied head reference the
    // embedding's bytes, while the Gather keeps its own mapping with only seen rows paged in.
    const info = ckpt.info(head);
    const sliceRows = opts.headSliceRows ?? Math.max(1, Math.floor((128 << 20) / (h * 4)));
    const inPlace = info.dtype === 'F32' && mapFile(info.file) !== null;
    const tiedSrc = !inPlace && cfg.tieEmbeddings ? embedF32 : null;
    const parts: string[] = [];
    for (let r0 = 0, i = 0; r0 < cfg.vocabSize; r0 += sliceRows, i++) {
      const r1 = Math.min(cfg.vocabSize, r0 + sliceRows);
      const name = `lm_head.${i}`;
      if (quant === 'int4' && embedInt4 !== null && cfg.tieEmbeddings) {
        // Tied: the slice is rows [r0, r1) of the lookup table's bytes (quantized once, read twice).
        const { q, s, blocks } = embedInt4;
        const blockBytes = (embedInt4.block * embedInt4.bits) / 8;
        const rowBytes = blocks * blockBytes;
        const b = g.view(`${name}.qweight`, q, DT.uint8, [r1 - r0, blocks, blockBytes], r0 * rowBytes, (r1 - r0) * rowBytes);
        const sc = g.view(`${name}.scales`, s, DT.float, [(r1 - r0) * blocks], r0 * blocks * 4, (r1 - r0) * blocks * 4);
        const zc = zeroPointCols(blocks);
        // A tiny table's zero points went inline (GraphBuilder.init): sliced as a copy; else a view.
        const z = embedInt4.z;
        const zs = z === null ? [] : [
          z.data.byteLength > 256
            ? g.view(`${name}.zero_points`, z.name, DT.uint8, [r1 - r0, zc], r0 * zc, (r1 - r0) * zc)
            : g.init(`${name}.zero_points`, DT.uint8, [r1 - r0, zc], z.data.subarray(r0 * zc, r1 * zc), false),
        ];
        lookupBytes -= (r1 - r0) * (rowBytes + blocks * 4 + (zs.length === 0 ? 0 : zc)); // counted once, as weights
        parts.push(nbits(normedLast, [b, sc, ...zs], { K: h, N: r1 - r0 }, headLead(), embedInt4.bits, embedInt4.block));
        continue;
      }
      if (carryCkpt !== null) {
        parts.push(carriedProduct(carry(), normedLast, headLead(), head, name, [r0, r1]));
        continue;
      }
      if (quant === 'int4') {
        const m = vocabBits === 8 ? w.int8(head, [r0, r1], block) : w.fusedInt4([head], [r0, r1], block, zp);
        const b = g.init(`${name}.qweight`, DT.uint8, [m.rows, m.blocks, vocabBlockBytes], m.packed);
        const s = g.init(`${name}.scales`, DT.float, [m.rows * m.blocks], m.scales);
        parts.push(nbits(normedLast, [b, s, ...zeroInit(name, m)], { K: h, N: r1 - r0 }, headLead(), vocabBits));
        continue;
      }
      const wPart = inPlace
        ? g.external(name, DT.float, [r1 - r0, h], mapFile(info.file) as string, info.byteStart + r0 * h * 4, (r1 - r0) * h * 4)
        : tiedSrc !== null
          ? g.aliasRows(name, tiedSrc, r0, r1)
          : g.init(name, DT.float, [r1 - r0, h], w.rows(info, r0, r1));
      parts.push(g.op('Gemm', [normedLast, wPart], { transB: 1 }));
    }
    const all = parts.length === 1 ? (parts[0] as string) : g.op('Concat', parts, { axis: -1 });
    g.node('Reshape', [all, g.i64([-1, cfg.vocabSize])], [IO.logits]);
    g.output(IO.logits, DT.float, ['rows', cfg.vocabSize]);
  }
  const built = g.finish(`hearth_${cfg.family}_${start}_${end}`);
  const inputNames: string[] = [first ? IO.inputIds : IO.hiddenIn];
  const outputNames: string[] = last ? [IO.logits, IO.hiddenNormed] : [IO.hiddenOut];
  for (let li = 0; li < end - start; li++) {
    inputNames.push(IO.pastKey(li), IO.pastValue(li));
    outputNames.push(...(kind === 'fused' ? [IO.newKey(li), IO.newValue(li)] : [IO.presentKey(li), IO.presentValue(li)]));
  }
  return { ...built, attention: kind, weightBytes: g.weightBytes, lookupBytes, inputNames, outputNames };
}
