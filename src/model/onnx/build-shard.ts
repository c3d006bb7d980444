// buildShardGraph: the ONNX model for layers [start, end) of a checkpoint.
//
// Inputs:  input_ids int32 [B,S] (first stage) or hidden_in fp32 [B,S,H]; the attention inputs of
//          the chosen kind (see attention.ts); past_key.i / past_value.i fp32 [B,Hkv,P,D] per layer.
// Outputs: hidden_out [B,S,H] (inner stages) or logits [B,V] of each item's LAST position (last
//          stage); present_key.i / present_value.i.
// The residual stream runs through SkipSimplifiedLayerNormalization, which adds and normalizes in
// one kernel and hands back the sum as the next residual.

import type { Checkpoint } from '../types.ts';
import type { StageSpec } from '../../runtime/types.ts';
import { EMBED_TOKENS, FINAL_NORM, layerTensorNames, lmHeadName } from '../tensor-names.ts';
import { DT, MS_DOMAIN, GraphBuilder, type ExternalFile } from './graph.ts';
import { attention, attentionContext, headNorm, type AttentionKind } from './attention.ts';
import { ropeTables } from './rope.ts';
import { concatVectors, fusedInt4, fusedTransposed } from './weights.ts';

export interface BuildShardOptions {
  /** 'auto' picks gqa when headDim % 16 == 0 (GQA's rotary kernel needs it), plain otherwise. */
  readonly attention?: AttentionKind | 'auto';
  /** MatMulNBits accuracy_level: 4 = int8 activations (fastest on AVX-512 VNNI), 0 = fp32. */
  readonly accuracyLevel?: number;
  /** Rotary table length (default: config maxPositions). */
  readonly maxPositions?: number;
  /**
   * Write each weight into this folder as w<i>.bin as soon as it is made (then load the model from
   * a file there): weights never accumulate in memory, and onnxruntime maps files much faster than
   * it copies in-memory external data. Without it, `externalData` carries the bytes.
   */
  readonly externalDir?: string;
  /** Called after each layer's weights are placed (progress, and a chance to let GC run). */
  readonly onLayer?: (layer: number) => void;
}

export interface ShardGraph {
  readonly model: Uint8Array;
  readonly externalData: ExternalFile[];
  readonly attention: AttentionKind;
  /** Bytes of weights the graph carries. */
  readonly weightBytes: number;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

export const IO = {
  inputIds: 'input_ids',
  hiddenIn: 'hidden_in',
  hiddenOut: 'hidden_out',
  logits: 'logits',
  pastKey: (l: number) => `past_key.${l}`,
  pastValue: (l: number) => `past_value.${l}`,
  presentKey: (l: number) => `present_key.${l}`,
  presentValue: (l: number) => `present_value.${l}`,
} as const;

export function chooseAttention(headDim: number, pref: AttentionKind | 'auto' = 'auto'): AttentionKind {
  if (pref !== 'auto') return pref;
  return headDim % 16 === 0 ? 'gqa' : 'plain';
}

export function buildShardGraph(ckpt: Checkpoint, spec: Pick<StageSpec, 'start' | 'end' | 'quant'>, opts: BuildShardOptions = {}): ShardGraph {
  const cfg = ckpt.config;
  const { start, end, quant } = spec;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start && end <= cfg.numLayers)) {
    throw new RangeError(`layer range [${start}, ${end}) is not inside [0, ${cfg.numLayers})`);
  }
  const first = start === 0;
  const last = end === cfg.numLayers;
  const kind = chooseAttention(cfg.headDim, opts.attention);
  const accuracyLevel = opts.accuracyLevel ?? 4;
  const { hiddenSize: h, numHeads: hq, numKvHeads: hkv, headDim: d, rmsNormEps: eps } = cfg;
  const g = new GraphBuilder(opts.externalDir ?? null);
  const eps32 = { float: eps };

  /** y = x W^T (+ b) for the HF weights `names` stacked along the output dimension. */
  const linear = (x: string, names: readonly string[], bias: readonly string[] | null, tag: string): string => {
    if (quant === 'int4') {
      const m = fusedInt4(ckpt, names);
      const b = g.init(`${tag}.qweight`, DT.uint8, [m.rows, m.blocks, 16], m.packed);
      const s = g.init(`${tag}.scales`, DT.float, [m.rows * m.blocks], m.scales);
      const ins = [x, b, s];
      if (bias) ins.push('', '', g.init(`${tag}.bias`, DT.float, [m.rows], concatVectors(ckpt, bias)));
      return g.op('MatMulNBits', ins, { K: m.cols, N: m.rows, bits: 4, block_size: 32, accuracy_level: accuracyLevel }, MS_DOMAIN);
    }
    const w = fusedTransposed(ckpt, names);
    const y = g.op('MatMul', [x, g.init(`${tag}.weight`, DT.float, [w.k, w.n], w.data)]);
    return bias ? g.op('Add', [y, g.init(`${tag}.bias`, DT.float, [w.n], concatVectors(ckpt, bias))]) : y;
  };
  const vec = (name: string): string => g.init(name, DT.float, [ckpt.info(name).shape[0] ?? 0], ckpt.read(name));

  // --- embedding or incoming hidden state --------------------------------------------------------
  let hidden: string;
  // The int4 table is shared with a tied lm_head, so it is made once.
  let embedInt4: { b: string; s: string; rows: number; blocks: number; cols: number } | null = null;
  let embedF32: string | null = null;
  const tiedLast = last && cfg.tieEmbeddings;
  if (first) {
    const ids = g.input(IO.inputIds, DT.int32, ['batch', 'seq']);
    if (quant === 'int4') {
      const m = fusedInt4(ckpt, [EMBED_TOKENS]);
      embedInt4 = {
        b: g.init('embed.qweight', DT.uint8, [m.rows, m.blocks, 16], m.packed),
        s: g.init('embed.scales', DT.float, [m.rows * m.blocks], m.scales),
        rows: m.rows,
        blocks: m.blocks,
        cols: m.cols,
      };
      hidden = gatherInt4(g, embedInt4, ids, h);
    } else {
      embedF32 = g.init('embed.weight', DT.float, [cfg.vocabSize, h], ckpt.read(EMBED_TOKENS));
      hidden = g.op('Gather', [embedF32, ids], { axis: 0 });
    }
  } else {
    hidden = g.input(IO.hiddenIn, DT.float, ['batch', 'seq', h]);
  }

  // --- layers --------------------------------------------------------------------------------------
  const positions = opts.maxPositions ?? cfg.maxPositions;
  const { cos, sin } = ropeTables(cfg, positions);
  const actx = attentionContext(g, cfg, kind, cos, sin, positions);
  let residual = hidden;
  let normed = g.op('SimplifiedLayerNormalization', [hidden, vec(layerTensorNames(start).inputNorm)], { axis: -1, epsilon: eps32 });
  let pendingOut: string | null = null;
  const qDim = hq * d;
  const kvDim = hkv * d;
  for (let l = start; l < end; l++) {
    const n = layerTensorNames(l);
    const li = l - start;
    const io = {
      pastKey: g.input(IO.pastKey(li), DT.float, ['batch', hkv, 'past', d]),
      pastValue: g.input(IO.pastValue(li), DT.float, ['batch', hkv, 'past', d]),
      presentKey: IO.presentKey(li),
      presentValue: IO.presentValue(li),
    };
    g.output(io.presentKey, DT.float, ['batch', hkv, 'present', d]);
    g.output(io.presentValue, DT.float, ['batch', hkv, 'present', d]);
    if (pendingOut !== null) {
      // Previous layer's MLP output + residual, then this layer's input norm, in one kernel.
      const outs = g.node('SkipSimplifiedLayerNormalization', [pendingOut, residual, vec(n.inputNorm)], [g.name('ln1'), '', '', g.name('res')], { epsilon: eps32 }, MS_DOMAIN);
      normed = outs[0] as string;
      residual = outs[3] as string;
    }
    const qkv = linear(normed, [n.q, n.k, n.v], cfg.attentionBias ? [n.qBias, n.kBias, n.vBias] : null, `l${l}.qkv`);
    let ctx: string;
    if (cfg.qkNorm) {
      const [q, k, v] = g.node('Split', [qkv, g.i64([qDim, kvDim, kvDim])], 3, { axis: -1 }) as [string, string, string];
      const qn = headNorm(g, g.op('Reshape', [q, g.i64([0, 0, hq, d])]), vec(n.qNorm), eps);
      const kn = headNorm(g, g.op('Reshape', [k, g.i64([0, 0, hkv, d])]), vec(n.kNorm), eps);
      ctx = attention(g, cfg, actx, io, { q: g.op('Reshape', [qn, g.i64([0, 0, qDim])]), k: g.op('Reshape', [kn, g.i64([0, 0, kvDim])]), v });
    } else {
      ctx = attention(g, cfg, actx, io, { qkv });
    }
    const attnOut = linear(ctx, [n.o], null, `l${l}.o`);
    const outs = g.node('SkipSimplifiedLayerNormalization', [attnOut, residual, vec(n.postNorm)], [g.name('ln2'), '', '', g.name('res')], { epsilon: eps32 }, MS_DOMAIN);
    residual = outs[3] as string;
    const gu = linear(outs[0] as string, [n.gate, n.up], null, `l${l}.gate_up`);
    const [gate, up] = g.node('Split', [gu, g.i64([cfg.intermediateSize, cfg.intermediateSize])], 2, { axis: -1 }) as [string, string];
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    pendingOut = linear(act, [n.down], null, `l${l}.down`);
    opts.onLayer?.(l);
  }

  // --- stage output --------------------------------------------------------------------------------
  if (!last) {
    g.node('Add', [pendingOut ?? hidden, residual], [IO.hiddenOut]);
    g.output(IO.hiddenOut, DT.float, ['batch', 'seq', h]);
  } else {
    // Only the last position of each item needs logits: slice before the norm and the big matmul.
    const lastPos = g.op('Slice', [pendingOut ?? hidden, g.i64([-1]), g.i64([Number.MAX_SAFE_INTEGER]), g.i64([1])]);
    const lastRes = g.op('Slice', [residual, g.i64([-1]), g.i64([Number.MAX_SAFE_INTEGER]), g.i64([1])]);
    const outs = g.node('SkipSimplifiedLayerNormalization', [lastPos, lastRes, vec(FINAL_NORM)], [g.name('lnf')], { epsilon: eps32 }, MS_DOMAIN);
    const x2 = g.op('Reshape', [outs[0] as string, g.i64([-1, h])]); // [B, H]
    const v = cfg.vocabSize;
    if (quant === 'int4') {
      const m = tiedLast && embedInt4 ? embedInt4 : (() => {
        const q = fusedInt4(ckpt, [lmHeadName(cfg)]);
        return {
          b: g.init('lm_head.qweight', DT.uint8, [q.rows, q.blocks, 16], q.packed),
          s: g.init('lm_head.scales', DT.float, [q.rows * q.blocks], q.scales),
          rows: q.rows,
          blocks: q.blocks,
          cols: q.cols,
        };
      })();
      g.node('MatMulNBits', [x2, m.b, m.s], [IO.logits], { K: h, N: v, bits: 4, block_size: 32, accuracy_level: accuracyLevel }, MS_DOMAIN);
    } else {
      // Gemm with transB reads the [V, H] table as stored, so a tied head shares the embedding.
      const w = tiedLast && embedF32 ? embedF32 : g.init('lm_head.weight', DT.float, [v, h], ckpt.read(lmHeadName(cfg)));
      g.node('Gemm', [x2, w], [IO.logits], { transB: 1 });
    }
    g.output(IO.logits, DT.float, ['batch', v]);
  }
  const built = g.finish(`hearth_${cfg.family}_${start}_${end}`);
  const inputNames: string[] = [first ? IO.inputIds : IO.hiddenIn];
  const outputNames: string[] = [last ? IO.logits : IO.hiddenOut];
  for (let li = 0; li < end - start; li++) {
    inputNames.push(IO.pastKey(li), IO.pastValue(li));
    outputNames.push(IO.presentKey(li), IO.presentValue(li));
  }
  return { ...built, attention: kind, weightBytes: g.weightBytes, inputNames, outputNames };
}

/**
 * Embedding lookup from the int4 table MatMulNBits uses ([V, blocks, 16] uint8 + [V*blocks] scales),
 * dequantized in plain ops for just the looked-up rows, so a tied lm_head shares the same bytes.
 */
function gatherInt4(g: GraphBuilder, t: { b: string; s: string; blocks: number; cols: number }, ids: string, h: number): string {
  const packed = g.op('Gather', [t.b, ids], { axis: 0 }); // [B,S,blocks,16] uint8
  const lo = g.op('BitwiseAnd', [packed, g.init(g.name('u8_15'), DT.uint8, [], Uint8Array.of(15))]);
  const hi = g.op('BitShift', [packed, g.init(g.name('u8_4'), DT.uint8, [], Uint8Array.of(4))], { direction: 'RIGHT' });
  const last = g.i64([-1]);
  // Low nibble holds the even k: interleave (lo, hi) along a new last axis.
  const pairs = g.op('Concat', [g.op('Unsqueeze', [lo, last]), g.op('Unsqueeze', [hi, last])], { axis: -1 });
  const q = g.op('Reshape', [pairs, g.i64([0, 0, t.blocks, 32])]);
  const centered = g.op('Sub', [g.op('Cast', [q], { to: DT.float }), g.f32(8)]);
  // scales[id * blocks + j] for j < blocks
  const base = g.op('Mul', [g.op('Unsqueeze', [ids, last]), g.init(g.name('i32_blocks'), DT.int32, [], Int32Array.of(t.blocks))]);
  const idx = g.op('Add', [base, g.init(g.name('i32_range'), DT.int32, [t.blocks], Int32Array.from({ length: t.blocks }, (_, i) => i))]);
  const scales = g.op('Unsqueeze', [g.op('Gather', [t.s, idx], { axis: 0 }), last]); // [B,S,blocks,1]
  const rows = g.op('Reshape', [g.op('Mul', [centered, scales]), g.i64([0, 0, t.blocks * 32])]);
  return t.blocks * 32 === h ? rows : g.op('Slice', [rows, g.i64([0]), g.i64([h]), g.i64([2])]);
}
