// Takes a first stage's quantized token lookup (GatherBlockQuantized on `input_ids`) out of the
// graph: the stage then reads `hidden_in`, and the runtime looks the rows up itself with positioned
// reads (src/runtime/table-lookup.ts). Why: onnxruntime maps the table's file, and every looked-up
// row faults in the kernel's 64 KB fault-around window, which stays in the process's RSS: a 2k
// prompt of the 0.5B shape made 55 MiB of its 68 MB int4 table resident (issue 25). Read with
// pread, the same bytes stay in the page cache, which RSS does not count.
//
// Where the table's bytes are and how they are quantized goes into the model's metadata under
// LOOKUP_KEY. Its initializers leave the graph unless another node reads them (a tied head reads
// the same bytes through views of its own); the bytes stay in their files.

import onnxProto from 'onnx-proto';
import { DT } from './graph.ts';

const { onnx } = onnxProto;

/** metadata_props key of the lookup a stage's caller must do (JSON of OutsideLookup). */
export const LOOKUP_KEY = 'hearth.token_lookup';

/** Bytes of one of the lookup's tensors: a region of a file beside model.onnx, or inline (base64). */
export interface LookupTensor {
  readonly dims: readonly number[];
  readonly location?: string;
  readonly offset?: number;
  readonly base64?: string;
}

/** What the removed GatherBlockQuantized did: its tensors (uint8 table, float scales, uint8 zero points) and attributes. */
export interface OutsideLookup {
  readonly table: LookupTensor;
  readonly scales: LookupTensor;
  readonly zeroPoints: LookupTensor | null;
  readonly bits: number;
  readonly blockSize: number;
}

function tensorOf(t: onnxProto.onnx.ITensorProto): LookupTensor {
  const dims = (t.dims ?? []).map(Number);
  const ext = t.externalData;
  if (!ext?.length) return { dims, base64: Buffer.from(t.rawData ?? new Uint8Array(0)).toString('base64') };
  const get = (k: string): string => ext.find((e) => e.key === k)?.value ?? '';
  return { dims, location: get('location'), offset: Number(get('offset') || 0) };
}

/** Whether a node of `g` or of a subgraph inside it reads `name`. */
function reads(g: onnxProto.onnx.IGraphProto, name: string): boolean {
  return (g.node ?? []).some((n) => (n.input ?? []).includes(name) || (n.attribute ?? []).some((a) => (a.g ? reads(a.g, name) : false) || (a.graphs ?? []).some((sg) => reads(sg, name))));
}

/**
 * The model with its id lookup replaced by a `hidden_in` input (an Identity keeps the lookup's
 * output name for every consumer), or null when the graph has no such lookup (a later stage, an
 * fp32 table, or one already moved out).
 */
export function moveLookupOut(model: Uint8Array, ids = 'input_ids', hiddenIn = 'hidden_in'): Uint8Array | null {
  const m = onnx.ModelProto.decode(model);
  const g = m.graph;
  if (!g) return null;
  const at = (g.node ?? []).findIndex((n) => n.opType === 'GatherBlockQuantized' && n.input?.[1] === ids);
  if (at < 0) return null;
  const node = g.node?.[at] as onnxProto.onnx.INodeProto;
  // Another reader of the ids (none today) would lose its input.
  if ((g.node ?? []).some((n, i) => i !== at && (n.input ?? []).includes(ids))) return null;
  const attr = (name: string, dflt: number): number => Number(node.attribute?.find((a) => a.name === name)?.i ?? dflt);
  if (attr('gather_axis', 0) !== 0 || attr('quantize_axis', 1) !== 1) return null;
  const [table, , scales, zeroPoints] = node.input ?? [];
  const init = (name: string | undefined): onnxProto.onnx.ITensorProto | undefined => g.initializer?.find((t) => t.name === name);
  const q = init(table);
  const s = init(scales);
  if (!q || !s || q.dataType !== DT.uint8 || s.dataType !== DT.float || q.dims?.length !== 2) return null;
  const bits = attr('bits', 4);
  const width = (Number(q.dims[1]) * 8) / bits;
  const z = zeroPoints ? init(zeroPoints) : undefined;
  if (zeroPoints && (!z || z.dataType !== DT.uint8)) return null;
  const lookup: OutsideLookup = { table: tensorOf(q), scales: tensorOf(s), zeroPoints: z ? tensorOf(z) : null, bits, blockSize: attr('block_size', 128) };
  (g.node as onnxProto.onnx.INodeProto[])[at] = { opType: 'Identity', domain: '', name: `${node.name ?? 'lookup'}_outside`, input: [hiddenIn], output: [...(node.output ?? [])] };
  // onnxruntime would drop them with a warning each.
  const gone = [table, scales, zeroPoints].filter((n): n is string => !!n && !reads(g, n));
  g.initializer = (g.initializer ?? []).filter((t) => !gone.includes(t.name ?? ''));
  const inputs = (g.input ?? []).filter((v) => v.name !== ids);
  inputs.unshift({ name: hiddenIn, type: { tensorType: { elemType: DT.float, shape: { dim: [{ dimParam: 'batch' }, { dimParam: 'seq' }, { dimValue: width }] } } } });
  g.input = inputs;
  m.metadataProps = [...(m.metadataProps ?? []).filter((p) => p.key !== LOOKUP_KEY), { key: LOOKUP_KEY, value: JSON.stringify(lookup) }];
  return onnx.ModelProto.encode(m).finish();
}
