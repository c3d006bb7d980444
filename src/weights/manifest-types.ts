// The wire shape of GET /internal/weights/:model/manifest. Versioned: a worker refuses a manifest
// whose version it does not know instead of guessing at fields.

export const MANIFEST_VERSION = 1;

export interface ManifestFile {
  /** Base name inside the checkpoint folder; the only names /file/:name serves. */
  readonly name: string;
  readonly size: number;
}

export interface ManifestTensor {
  readonly name: string;
  /** Base name of the .safetensors file holding it. */
  readonly file: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte range inside `file`, end exclusive (what a Range request asks for). */
  readonly byteStart: number;
  readonly byteEnd: number;
  /** Hex sha256 of exactly those bytes. */
  readonly sha256: string;
}

export interface WeightsManifest {
  readonly version: typeof MANIFEST_VERSION;
  readonly model: string;
  readonly numLayers: number;
  /** config.json tie_word_embeddings (null when it does not say): decides embed vs lm_head on the last stage. */
  readonly tieEmbeddings: boolean | null;
  readonly files: readonly ManifestFile[];
  /** Every tensor, or only a stage's when the request named ?start=&end=. */
  readonly tensors: readonly ManifestTensor[];
}

/** The wire shape of GET /internal/weights/:model/shard (issue 20): the gateway's int4 build of one
 *  stage, as a content-addressed shard cache entry a worker fetches and loads as is. */
export const SHARD_MANIFEST_VERSION = 1;

export interface ShardManifestFile {
  readonly name: string;
  readonly size: number;
  /** Hex sha256 of the whole file: the worker checks every byte it fetched against it. */
  readonly sha256: string;
}

export interface ShardManifest {
  readonly version: typeof SHARD_MANIFEST_VERSION;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly quant: string;
  /** The entry's content address: sha256 over the checkpoint's digests, the range, the build
   *  options and builderVersion() (runtime/shard-cache-key.ts shardKey). */
  readonly key: string;
  /** What the key was made of (the entry manifest's `parts`, kept by the worker's cache as is). */
  readonly parts: unknown;
  readonly attention: string;
  readonly weightBytes: number;
  readonly lookupBytes: number;
  /** Whether the head is the embedding, as the gateway's checkpoint (config.json, else its weights) says. */
  readonly tieEmbeddings: boolean | null;
  /** The built files: model.onnx and its w<i>.bin, served under /shard/:key/:name. */
  readonly files: readonly ShardManifestFile[];
  /** Small non-weight files (config, tokenizer, template), served under /file/:name. */
  readonly extras: readonly ShardManifestFile[];
}
