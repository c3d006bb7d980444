// Lays out and encodes a safetensors header for tensors whose bytes are written after it, in order.
// The header JSON is padded with spaces to a multiple of 8 so tensor data starts aligned, as the
// reference writer does (https://github.com/huggingface/safetensors, "header may be padded").

export interface TensorLayoutInput {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

export interface SafetensorsLayout {
  /** 8-byte length prefix + padded JSON header: write this first, then each tensor's bytes in order. */
  readonly header: Buffer;
  /** Offsets inside the output file where each tensor starts (same order as the input). */
  readonly offsets: readonly number[];
  readonly totalBytes: number;
}

export function layoutSafetensors(tensors: readonly TensorLayoutInput[], metadata?: Record<string, string>): SafetensorsLayout {
  const json: Record<string, unknown> = {};
  if (metadata !== undefined) json['__metadata__'] = metadata;
  let at = 0;
  const rel: number[] = [];
  for (const t of tensors) {
    json[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.byteLength] };
    rel.push(at);
    at += t.byteLength;
  }
  let text = JSON.stringify(json);
  const pad = (8 - (Buffer.byteLength(text) % 8)) % 8;
  text += ' '.repeat(pad);
  const body = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return { header, offsets: rel.map((r) => header.length + r), totalBytes: header.length + at };
}
