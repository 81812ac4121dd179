/**
 * Network hyper-parameters read off canonical tensor shapes (any layout), completed by the
 * component's config.json when the checkpoint ships one.
 *
 * Values that shapes cannot tell (head counts, group-norm groups, the time-id embedding width)
 * follow one rule when no config.json says otherwise:
 * - full-width models (UNet block_out_channels[0] ≥ 320, VAE ≥ 128, CLIP hidden ≥ 256) get the
 *   SDXL values: UNet/CLIP head dim 64, 32 norm groups, VAE scaling 0.13025;
 * - narrower models are tiny test models (the oracle's and `makeTestModel`'s 'tiny'): UNet head
 *   dim 16, CLIP 4 heads, 8 norm groups.
 * `addTimeEmbedDim` = (add_embedding input − pooled text dim) / 6 (six time ids), the pooled dim
 * being text encoder 2's projection size.
 */
import { AtelierError } from '../contract/errors.ts';
import type { ClipTextConfig, TensorRef, UNetConfig, VaeConfig } from './types.ts';

type Weights = ReadonlyMap<string, TensorRef>;
type Json = Record<string, unknown> | null | undefined;

export const FULL_UNET_MIN_CHANNELS = 320;
export const FULL_VAE_MIN_CHANNELS = 128;
export const FULL_CLIP_MIN_HIDDEN = 256;

function shapeOf(w: Weights, name: string, what: string): number[] {
  const t = w.get(name);
  if (!t) throw new AtelierError('CHECKPOINT_INVALID', `${what}: missing tensor "${name}"`);
  return t.shape;
}

/** Number of consecutive children `prefix0.`, `prefix1.`, … present among names. */
function countChildren(w: Weights, prefix: string): number {
  let n = 0;
  const starts = (i: number): boolean => {
    for (const k of w.keys()) if (k.startsWith(`${prefix}${i}.`)) return true;
    return false;
  };
  while (starts(n)) n++;
  return n;
}

function num(json: Json, key: string): number | undefined {
  const v = json?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function perLevel(json: Json, key: string, levels: number): number[] | undefined {
  const v = json?.[key];
  if (typeof v === 'number') return Array(levels).fill(v);
  if (Array.isArray(v) && v.length === levels && v.every((x) => typeof x === 'number')) return v as number[];
  return undefined;
}

export function unetConfigFromShapes(w: Weights, opts: { config?: Json; pooledDim?: number } = {}): UNetConfig {
  const what = 'UNet';
  const cfg = opts.config;
  const levels = countChildren(w, 'down_blocks.');
  if (levels === 0) throw new AtelierError('CHECKPOINT_INVALID', `${what}: no down_blocks.* tensors`);
  const blockOutChannels = Array.from({ length: levels }, (_, i) => shapeOf(w, `down_blocks.${i}.resnets.0.conv1.weight`, what)[0]);
  const transformerLayersPerBlock = Array.from({ length: levels }, (_, i) => countChildren(w, `down_blocks.${i}.attentions.0.transformer_blocks.`));
  const midTransformerLayers = countChildren(w, 'mid_block.attentions.0.transformer_blocks.');
  const full = blockOutChannels[0] >= FULL_UNET_MIN_CHANNELS;
  const headDim = full ? 64 : 16;
  // diffusers' UNet2DConditionModel: num_attention_heads, falling back to (misnamed) attention_head_dim
  const heads = perLevel(cfg, 'num_attention_heads', levels) ?? perLevel(cfg, 'attention_head_dim', levels) ?? blockOutChannels.map((c) => Math.max(1, Math.floor(c / headDim)));
  const numHeads = heads.map((h, i) => (transformerLayersPerBlock[i] > 0 ? h : 0));
  const firstAttn = [...w.keys()].find((k) => k.endsWith('.attn2.to_k.weight'));
  const addIn = shapeOf(w, 'add_embedding.linear_1.weight', what)[1];
  const addTimeEmbedDim = num(cfg, 'addition_time_embed_dim') ?? (opts.pooledDim !== undefined ? (addIn - opts.pooledDim) / 6 : full ? 256 : 8);
  const anyProjIn = [...w.keys()].find((k) => k.endsWith('.proj_in.weight'));
  return {
    inChannels: shapeOf(w, 'conv_in.weight', what)[1],
    outChannels: shapeOf(w, 'conv_out.weight', what)[0],
    blockOutChannels,
    layersPerBlock: countChildren(w, 'down_blocks.0.resnets.'),
    transformerLayersPerBlock,
    midTransformerLayers,
    numHeads,
    crossAttentionDim: firstAttn ? w.get(firstAttn)!.shape[1] : (num(cfg, 'cross_attention_dim') ?? 2048),
    normNumGroups: num(cfg, 'norm_num_groups') ?? (full ? 32 : 8),
    normEps: num(cfg, 'norm_eps') ?? 1e-5,
    timeEmbedDim: shapeOf(w, 'time_embedding.linear_1.weight', what)[0],
    addTimeEmbedDim,
    projectionClassEmbeddingsInputDim: addIn,
    useLinearProjection: anyProjIn ? w.get(anyProjIn)!.shape.length === 2 : true,
  };
}

export function vaeConfigFromShapes(w: Weights, opts: { config?: Json } = {}): VaeConfig {
  const what = 'VAE';
  const levels = countChildren(w, 'encoder.down_blocks.');
  if (levels === 0) throw new AtelierError('CHECKPOINT_INVALID', `${what}: no encoder.down_blocks.* tensors`);
  const blockOutChannels = Array.from({ length: levels }, (_, i) => shapeOf(w, `encoder.down_blocks.${i}.resnets.0.conv1.weight`, what)[0]);
  const full = blockOutChannels[0] >= FULL_VAE_MIN_CHANNELS;
  return {
    inChannels: shapeOf(w, 'encoder.conv_in.weight', what)[1],
    latentChannels: shapeOf(w, 'decoder.conv_in.weight', what)[1],
    blockOutChannels,
    layersPerBlock: countChildren(w, 'encoder.down_blocks.0.resnets.'),
    normNumGroups: num(opts.config, 'norm_num_groups') ?? (full ? 32 : 8),
    scalingFactor: num(opts.config, 'scaling_factor') ?? 0.13025,
  };
}

export function clipConfigFromShapes(w: Weights, opts: { config?: Json; which: 1 | 2 }): ClipTextConfig {
  const what = `text encoder ${opts.which}`;
  const cfg = opts.config;
  const [vocabSize, hiddenSize] = shapeOf(w, 'text_model.embeddings.token_embedding.weight', what);
  const numLayers = countChildren(w, 'text_model.encoder.layers.');
  if (numLayers === 0) throw new AtelierError('CHECKPOINT_INVALID', `${what}: no text_model.encoder.layers.* tensors`);
  const act = cfg?.hidden_act;
  const proj = w.get('text_projection.weight');
  const out: ClipTextConfig = {
    vocabSize,
    hiddenSize,
    intermediateSize: shapeOf(w, 'text_model.encoder.layers.0.mlp.fc1.weight', what)[0],
    numLayers,
    numHeads: num(cfg, 'num_attention_heads') ?? (hiddenSize >= FULL_CLIP_MIN_HIDDEN ? hiddenSize / 64 : 4),
    maxPositions: shapeOf(w, 'text_model.embeddings.position_embedding.weight', what)[0],
    layerNormEps: num(cfg, 'layer_norm_eps') ?? 1e-5,
    act: act === 'gelu' || act === 'quick_gelu' ? act : opts.which === 1 ? 'quick_gelu' : 'gelu',
  };
  if (proj) out.projectionDim = proj.shape[0];
  return out;
}
