/**
 * The one description of an SDXL checkpoint that every network builder consumes,
 * whatever layout it came from (diffusers folder or single-file original).
 *
 * Canonical tensor names are the diffusers names *inside each component*
 * (e.g. UNet: `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight`,
 * VAE: `encoder.mid_block.attentions.0.to_q.weight`,
 * CLIP: `text_model.encoder.layers.0.self_attn.q_proj.weight`, `text_projection.weight`).
 */

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | 'U16' | 'U32' | 'U64';

/** Where one tensor's bytes live: a byte range of a file on disk (never loaded whole). */
export interface TensorRef {
  /** absolute path of the file holding the bytes */
  file: string;
  dtype: DType;
  /** logical shape in the canonical (diffusers) orientation, e.g. [out, in] for a Linear weight */
  shape: number[];
  /** absolute byte offset of the first element inside `file` */
  byteOffset: number;
  byteLength: number;
  /**
   * true when the stored 2-D matrix is the transpose of `shape`
   * (the single-file OpenCLIP `text_projection` is stored [hidden, proj]; diffusers stores [proj, hidden]).
   */
  transposed?: boolean;
}

/**
 * How the UNet's and text encoders' weights are held in memory; computation is float32 either way.
 * 'fp32' (default): float32 (a 16-bit checkpoint is converted once into the cache), fastest on CPU.
 * 'fp16': 16-bit, cast to float32 inside the graph at each run — half the memory, slower per step on CPU. A 16-bit
 * checkpoint (F16 or BF16) is used as stored, giving exactly the numbers of its float32 copy; a float32 checkpoint
 * is converted once to F16 (rounding: at most 2⁻¹¹ ≈ 4.9e-4 relative per weight in fp16's normal range).
 */
export { WEIGHT_PRECISIONS, type WeightPrecision } from '../contract/tables.ts';

export type ComponentName = 'unet' | 'vae' | 'textEncoder1' | 'textEncoder2';

export interface UNetConfig {
  inChannels: number; // 4
  outChannels: number; // 4
  blockOutChannels: number[]; // [320, 640, 1280]
  layersPerBlock: number; // 2
  /** transformer depth per down level; 0 = plain (DownBlock2D) level. SDXL: [0, 2, 10] */
  transformerLayersPerBlock: number[];
  /** transformer depth of the mid block (SDXL: 10) */
  midTransformerLayers: number;
  /** number of attention heads per level (SDXL: head dim 64 → [5, 10, 20]); 0 for levels without attention */
  numHeads: number[];
  crossAttentionDim: number; // 2048
  normNumGroups: number; // 32
  normEps: number; // 1e-5
  /** time embedding dim = 4 × blockOutChannels[0] */
  timeEmbedDim: number;
  addTimeEmbedDim: number; // 256
  projectionClassEmbeddingsInputDim: number; // 2816
  useLinearProjection: boolean;
}

export interface VaeConfig {
  inChannels: number; // 3
  latentChannels: number; // 4
  blockOutChannels: number[]; // [128, 256, 512, 512]
  layersPerBlock: number; // 2
  normNumGroups: number; // 32
  scalingFactor: number; // 0.13025
}

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  maxPositions: number; // 77
  layerNormEps: number; // 1e-5
  act: 'quick_gelu' | 'gelu';
  /** projection dim of text_encoder_2 (`text_projection`), absent for CLIP-L */
  projectionDim?: number;
}

export interface TokenizerFiles {
  vocabJson: string; // absolute path of vocab.json
  mergesTxt: string; // absolute path of merges.txt
}

export interface SdxlModel {
  /** human-readable name (file or folder base name) */
  name: string;
  /** the path the user gave */
  source: string;
  layout: 'diffusers' | 'single-file';
  /** fingerprint of the source (sizes + mtimes) for caches */
  fingerprint: string;
  weights: Record<ComponentName, Map<string, TensorRef>>;
  config: { unet: UNetConfig; vae: VaeConfig; textEncoder1: ClipTextConfig; textEncoder2: ClipTextConfig };
  /** per-component tokenizer files when the model ships them (diffusers folder); null → the standard CLIP vocabulary */
  tokenizers: { tokenizer1: TokenizerFiles; tokenizer2: TokenizerFiles } | null;
  /**
   * folder under which ALL tensor files of each component live (diffusers: the model root; single file:
   * its folder; fp32-converted components: the cache folder). Read it with `componentRoot()`.
   */
  componentRoots?: Record<ComponentName, string>;
  /** pad token of tokenizer 1 and 2 (SDXL: 49407 `<|endoftext|>` and 0 `!`) as ids; derived from tokenizer config */
  padTokens?: { tokenizer1: string; tokenizer2: string };
}
