// A small builder over onnx-proto's generated classes: nodes, graph inputs/outputs and initializers
// whose bytes live outside the protobuf (ONNX external data), so a shard of any size encodes to a
// few hundred KB of graph and its weights are handed to onnxruntime as in-memory "files".
// onnx-proto 8.0.1 carries the onnx 1.10 schema; data types are plain numbers (onnx.proto3 TensorProto.DataType).

import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** onnx TensorProto.DataType values we use. */
export const DT = { float: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10, bfloat16: 16 } as const;
export type DataType = (typeof DT)[keyof typeof DT];

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, GRAPH: 5, FLOATS: 6, INTS: 7 } as const;

export type Subgraph = onnxProto.onnx.IGraphProto;
export type AttrValue = number | string | readonly number[] | { readonly float: number } | { readonly floats: readonly number[] } | { readonly graph: Subgraph };
export type Attrs = Readonly<Record<string, AttrValue>>;

/** A dimension: a fixed size or a symbolic name (batch, seq…). */
export type Dim = number | string;

export interface ExternalFile {
  readonly path: string;
  readonly data: Uint8Array;
}

export const MS_DOMAIN = 'com.microsoft';

function attr(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  if (typeof v === 'number') {
    // Integers stay INT; use { float } to force FLOAT for whole numbers like epsilon 1.
    return Number.isInteger(v) ? { name, type: ATTR.INT, i: v } : { name, type: ATTR.FLOAT, f: v };
  }
  if (typeof v === 'string') return { name, type: ATTR.STRING, s: new TextEncoder().encode(v) };
  if ('float' in v) return { name, type: ATTR.FLOAT, f: v.float };
  if ('graph' in v) return { name, type: ATTR.GRAPH, g: v.graph };
  if ('floats' in v) return { name, type: ATTR.FLOATS, floats: [...v.floats] };
  return { name, type: ATTR.INTS, ints: [...(v as readonly number[])] };
}

function valueInfo(name: string, elemType: DataType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes a weight file 64 KB at a time. Why: Linux (6.x) caches a file in folios as large as the
 * writes that made it, and a fault on a mapped file maps the whole folio. onnxruntime maps these
 * files, so a lookup table written in one call made each token lookup resident ~1 MB (measured on
 * the 0.5B's int4 token table); written in 64 KB steps, a lookup maps ~64 KB, like a checkpoint.
 */
const WRITE_STEP = 64 << 10;
function writeInSmallSteps(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < bytes.byteLength; ) {
      off += fs.writeSync(fd, bytes, off, Math.min(WRITE_STEP, bytes.byteLength - off));
    }
  } finally {
    fs.closeSync(fd);
  }
}

export class GraphBuilder {
  private nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly files: ExternalFile[] = [];
  private counter = 0;
  private fileCount = 0;
  /** Bytes of initializer data (external and inline). */
  weightBytes = 0;

  /**
   * With `dir`, each external tensor is written there as soon as it is made and not kept: the
   * weights never sit in JS memory all at once, and onnxruntime loads (mmaps) files far faster
   * than in-memory external data (measured: ~40 MB/s in memory vs >1 GB/s from a file).
   */
  constructor(private readonly dir: string | null = null) {}

  /** A fresh, unique tensor name with a readable prefix. */
  name(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, elemType: DataType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: DataType, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /**
   * An initializer whose bytes travel as external data (no copy: the view is handed over as is).
   * Tiny tensors (shapes, axes) go inline.
   */
  init(name: string, elemType: DataType, dims: readonly number[], data: Float32Array | Uint8Array | Int32Array | BigInt64Array, countBytes = true): string {
    const bytes = bytesOf(data);
    if (countBytes) this.weightBytes += bytes.byteLength;
    if (bytes.byteLength <= 256) {
      this.inits.push({ name, dataType: elemType, dims: [...dims], rawData: bytes.slice() });
      return name;
    }
    const file = `w${this.fileCount++}.bin`;
    if (this.dir !== null) writeInSmallSteps(path.join(this.dir, file), bytes);
    else this.files.push({ path: file, data: bytes.slice() }); // callers reuse their buffers
    this.inits.push({
      name,
      dataType: elemType,
      dims: [...dims],
      dataLocation: 1, // EXTERNAL
      externalData: [
        { key: 'location', value: file },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(bytes.byteLength) },
      ],
    });
    return name;
  }

  /**
   * An initializer read in place from an existing file next to the model (a checkpoint's
   * safetensors, hard-linked in): no copy is made, onnxruntime maps the bytes.
   */
  external(name: string, elemType: number, dims: readonly number[], location: string, offset: number, length: number, countBytes = true): string {
    if (countBytes) this.weightBytes += length;
    this.inits.push({
      name,
      dataType: elemType,
      dims: [...dims],
      dataLocation: 1,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(length) },
      ],
    });
    return name;
  }

  /**
   * A second initializer over rows [r0, r1) of the external 2-D initializer `of` (e.g. slices of a
   * tied lm_head over the embedding's bytes).
   */
  aliasRows(name: string, of: string, r0: number, r1: number, countBytes = true): string {
    const src = this.inits.find((i) => i.name === of);
    const ext = src?.externalData;
    if (!src || !ext) throw new Error(`aliasRows: ${of} is not an external initializer`);
    const get = (k: string): string => ext.find((e) => e.key === k)?.value ?? '';
    const dims = (src.dims ?? []).map(Number);
    const rows = dims[0] ?? 1;
    const rowBytes = Number(get('length')) / rows;
    return this.external(name, src.dataType ?? DT.float, [r1 - r0, ...dims.slice(1)], get('location'), Number(get('offset')) + r0 * rowBytes, (r1 - r0) * rowBytes, countBytes);
  }

  /**
   * Another initializer over bytes [offset, offset + length) of the external initializer `of`,
   * with its own dims (one set of bytes read as a [V, K/2] lookup table and as [n, K/32, 16]
   * MatMulNBits slices).
   */
  view(name: string, of: string, elemType: number, dims: readonly number[], offset: number, length: number, countBytes = true): string {
    const ext = this.inits.find((i) => i.name === of)?.externalData;
    if (!ext) throw new Error(`view: ${of} is not an external initializer`);
    const get = (k: string): string => ext.find((e) => e.key === k)?.value ?? '';
    if (offset < 0 || offset + length > Number(get('length'))) throw new RangeError(`view: [${offset}, ${offset + length}) is outside ${of}`);
    return this.external(name, elemType, dims, get('location'), Number(get('offset')) + offset, length, countBytes);
  }

  /** int64 constant (shapes, axes, slice bounds). */
  i64(values: readonly number[], prefix = 'c'): string {
    const name = this.name(prefix);
    this.inits.push({ name, dataType: DT.int64, dims: [values.length], rawData: bytesOf(BigInt64Array.from(values.map(BigInt))).slice() });
    return name;
  }

  /** float scalar constant. */
  f32(value: number, prefix = 'c'): string {
    const name = this.name(prefix);
    this.inits.push({ name, dataType: DT.float, dims: [], rawData: bytesOf(Float32Array.of(value)).slice() });
    return name;
  }

  /** Adds a node; returns its output names (fresh ones when `outputs` is a count). */
  node(op: string, inputs: readonly string[], outputs: number | readonly string[] = 1, attrs: Attrs = {}, domain = ''): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.name(op)) : [...outputs];
    this.nodes.push({
      opType: op,
      domain,
      name: this.name(`n_${op}`),
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    return outs;
  }

  /**
   * A branch body for If/Loop: the nodes `build` adds go into the subgraph (they may read any name
   * of the enclosing graph; constants it makes land in the main graph), and the names it returns
   * become the subgraph's outputs, typed as given. A Loop body names its inputs (iteration number,
   * condition, then the loop-carried values) in `inputs`.
   */
  subgraph(name: string, build: () => readonly (readonly [string, DataType, readonly Dim[]])[], inputs: readonly (readonly [string, DataType, readonly Dim[]])[] = []): Subgraph {
    const outer = this.nodes;
    this.nodes = [];
    try {
      const outs = build();
      return { name: this.name(name), node: this.nodes, input: inputs.map(([n, t, dims]) => valueInfo(n, t, dims)), output: outs.map(([n, t, dims]) => valueInfo(n, t, dims)) };
    } finally {
      this.nodes = outer;
    }
  }

  /** Single-output node. */
  op(op: string, inputs: readonly string[], attrs: Attrs = {}, domain = ''): string {
    return this.node(op, inputs, 1, attrs, domain)[0] as string;
  }

  /** Encodes the model; external files (when not written to a dir) are returned alongside, uncopied. */
  finish(graphName: string): { model: Uint8Array; externalData: ExternalFile[] } {
    const model = onnx.ModelProto.encode({
      irVersion: 10,
      producerName: 'hearth',
      opsetImport: [
        { domain: '', version: 21 },
        { domain: MS_DOMAIN, version: 1 },
      ],
      graph: { name: graphName, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    }).finish();
    return { model, externalData: this.files };
  }
}
