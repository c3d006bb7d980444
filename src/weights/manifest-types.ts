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
