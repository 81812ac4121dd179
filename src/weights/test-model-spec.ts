/**
 * The canonical (diffusers) tensor list of an SDXL-architecture model for given configs:
 * names and shapes of every weight, as diffusers' UNet2DConditionModel / AutoencoderKL and
 * transformers' CLIPTextModel(WithProjection) create them (diffusers `unets/unet_2d_condition.py`,
 * `unets/unet_2d_blocks.py`, `autoencoders/vae.py`).
 */
import type { ClipTextConfig, SdxlModel, UNetConfig, VaeConfig } from './types.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
}

type Out = TensorSpec[];

function linear(out: Out, name: string, o: number, i: number, bias = true): void {
  out.push({ name: `${name}.weight`, shape: [o, i] });
  if (bias) out.push({ name: `${name}.bias`, shape: [o] });
}

function conv(out: Out, name: string, o: number, i: number, k: number): void {
  out.push({ name: `${name}.weight`, shape: [o, i, k, k] }, { name: `${name}.bias`, shape: [o] });
}

function norm(out: Out, name: string, c: number): void {
  out.push({ name: `${name}.weight`, shape: [c] }, { name: `${name}.bias`, shape: [c] });
}

/** ResnetBlock2D; `temb` = time embedding width (0: none, as in the VAE). */
function resnet(out: Out, name: string, cin: number, cout: number, temb: number): void {
  norm(out, `${name}.norm1`, cin);
  conv(out, `${name}.conv1`, cout, cin, 3);
  if (temb > 0) linear(out, `${name}.time_emb_proj`, cout, temb);
  norm(out, `${name}.norm2`, cout);
  conv(out, `${name}.conv2`, cout, cout, 3);
  if (cin !== cout) conv(out, `${name}.conv_shortcut`, cout, cin, 1);
}

/** Transformer2DModel with linear projections, `depth` BasicTransformerBlocks, GEGLU feed-forward. */
function transformer(out: Out, name: string, c: number, depth: number, cross: number): void {
  norm(out, `${name}.norm`, c);
  linear(out, `${name}.proj_in`, c, c);
  for (let d = 0; d < depth; d++) {
    const b = `${name}.transformer_blocks.${d}`;
    norm(out, `${b}.norm1`, c);
    for (const [attn, kv] of [['attn1', c], ['attn2', cross]] as const) {
      linear(out, `${b}.${attn}.to_q`, c, c, false);
      linear(out, `${b}.${attn}.to_k`, c, kv, false);
      linear(out, `${b}.${attn}.to_v`, c, kv, false);
      linear(out, `${b}.${attn}.to_out.0`, c, c);
      if (attn === 'attn1') norm(out, `${b}.norm2`, c);
    }
    norm(out, `${b}.norm3`, c);
    linear(out, `${b}.ff.net.0.proj`, 8 * c, c);
    linear(out, `${b}.ff.net.2`, c, 4 * c);
  }
  linear(out, `${name}.proj_out`, c, c);
}

export function unetTensors(cfg: UNetConfig): TensorSpec[] {
  const out: Out = [];
  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  const t = cfg.timeEmbedDim;
  conv(out, 'conv_in', ch[0], cfg.inChannels, 3);
  linear(out, 'time_embedding.linear_1', t, ch[0]);
  linear(out, 'time_embedding.linear_2', t, t);
  linear(out, 'add_embedding.linear_1', t, cfg.projectionClassEmbeddingsInputDim);
  linear(out, 'add_embedding.linear_2', t, t);
  let prev = ch[0];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(out, `down_blocks.${i}.resnets.${j}`, j === 0 ? prev : ch[i], ch[i], t);
      if (cfg.transformerLayersPerBlock[i] > 0) transformer(out, `down_blocks.${i}.attentions.${j}`, ch[i], cfg.transformerLayersPerBlock[i], cfg.crossAttentionDim);
    }
    if (i < levels - 1) conv(out, `down_blocks.${i}.downsamplers.0.conv`, ch[i], ch[i], 3);
    prev = ch[i];
  }
  const top = ch[levels - 1];
  resnet(out, 'mid_block.resnets.0', top, top, t);
  transformer(out, 'mid_block.attentions.0', top, cfg.midTransformerLayers, cfg.crossAttentionDim);
  resnet(out, 'mid_block.resnets.1', top, top, t);
  const rev = [...ch].reverse();
  const revDepth = [...cfg.transformerLayersPerBlock].reverse();
  let prevOut = rev[0];
  for (let i = 0; i < levels; i++) {
    const cout = rev[i];
    const cinSkip = rev[Math.min(i + 1, levels - 1)];
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      const skip = j === cfg.layersPerBlock ? cinSkip : cout;
      const resIn = j === 0 ? prevOut : cout;
      resnet(out, `up_blocks.${i}.resnets.${j}`, resIn + skip, cout, t);
      if (revDepth[i] > 0) transformer(out, `up_blocks.${i}.attentions.${j}`, cout, revDepth[i], cfg.crossAttentionDim);
    }
    if (i < levels - 1) conv(out, `up_blocks.${i}.upsamplers.0.conv`, cout, cout, 3);
    prevOut = cout;
  }
  norm(out, 'conv_norm_out', ch[0]);
  conv(out, 'conv_out', cfg.outChannels, ch[0], 3);
  return out;
}

function vaeMid(out: Out, part: string, c: number): void {
  resnet(out, `${part}.mid_block.resnets.0`, c, c, 0);
  norm(out, `${part}.mid_block.attentions.0.group_norm`, c);
  for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) linear(out, `${part}.mid_block.attentions.0.${p}`, c, c);
  resnet(out, `${part}.mid_block.resnets.1`, c, c, 0);
}

export function vaeTensors(cfg: VaeConfig): TensorSpec[] {
  const out: Out = [];
  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  const top = ch[levels - 1];
  const lat = cfg.latentChannels;
  conv(out, 'encoder.conv_in', ch[0], cfg.inChannels, 3);
  let prev = ch[0];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) resnet(out, `encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? prev : ch[i], ch[i], 0);
    if (i < levels - 1) conv(out, `encoder.down_blocks.${i}.downsamplers.0.conv`, ch[i], ch[i], 3);
    prev = ch[i];
  }
  vaeMid(out, 'encoder', top);
  norm(out, 'encoder.conv_norm_out', top);
  conv(out, 'encoder.conv_out', 2 * lat, top, 3);
  conv(out, 'quant_conv', 2 * lat, 2 * lat, 1);
  conv(out, 'post_quant_conv', lat, lat, 1);
  conv(out, 'decoder.conv_in', top, lat, 3);
  vaeMid(out, 'decoder', top);
  const rev = [...ch].reverse();
  let prevOut = rev[0];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) resnet(out, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prevOut : rev[i], rev[i], 0);
    if (i < levels - 1) conv(out, `decoder.up_blocks.${i}.upsamplers.0.conv`, rev[i], rev[i], 3);
    prevOut = rev[i];
  }
  norm(out, 'decoder.conv_norm_out', ch[0]);
  conv(out, 'decoder.conv_out', cfg.inChannels, ch[0], 3);
  return out;
}

export function clipTensors(cfg: ClipTextConfig): TensorSpec[] {
  const out: Out = [];
  const h = cfg.hiddenSize;
  out.push({ name: 'text_model.embeddings.token_embedding.weight', shape: [cfg.vocabSize, h] });
  out.push({ name: 'text_model.embeddings.position_embedding.weight', shape: [cfg.maxPositions, h] });
  for (let n = 0; n < cfg.numLayers; n++) {
    const l = `text_model.encoder.layers.${n}`;
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) linear(out, `${l}.self_attn.${p}`, h, h);
    norm(out, `${l}.layer_norm1`, h);
    linear(out, `${l}.mlp.fc1`, cfg.intermediateSize, h);
    linear(out, `${l}.mlp.fc2`, h, cfg.intermediateSize);
    norm(out, `${l}.layer_norm2`, h);
  }
  norm(out, 'text_model.final_layer_norm', h);
  if (cfg.projectionDim !== undefined) linear(out, 'text_projection', cfg.projectionDim, h, false);
  return out;
}

export type ModelConfigs = SdxlModel['config'];

/** Canonical tensors of all four components. */
export function modelTensors(cfg: ModelConfigs): Record<keyof ModelConfigs, TensorSpec[]> {
  return {
    unet: unetTensors(cfg.unet),
    vae: vaeTensors(cfg.vae),
    textEncoder1: clipTensors(cfg.textEncoder1),
    textEncoder2: clipTensors(cfg.textEncoder2),
  };
}

/** Same block structure and widths as the oracle's tiny-sdxl, but the real CLIP vocabulary. */
export const TINY_CONFIGS: ModelConfigs = {
  unet: {
    inChannels: 4, outChannels: 4, blockOutChannels: [16, 32, 64], layersPerBlock: 2, transformerLayersPerBlock: [0, 2, 3],
    midTransformerLayers: 3, numHeads: [0, 2, 4], crossAttentionDim: 96, normNumGroups: 8, normEps: 1e-5, timeEmbedDim: 64,
    addTimeEmbedDim: 8, projectionClassEmbeddingsInputDim: 112, useLinearProjection: true,
  },
  vae: { inChannels: 3, latentChannels: 4, blockOutChannels: [32, 32, 64, 64], layersPerBlock: 1, normNumGroups: 8, scalingFactor: 0.13025 },
  textEncoder1: { vocabSize: 49408, hiddenSize: 32, intermediateSize: 128, numLayers: 4, numHeads: 4, maxPositions: 77, layerNormEps: 1e-5, act: 'quick_gelu' },
  textEncoder2: { vocabSize: 49408, hiddenSize: 64, intermediateSize: 256, numLayers: 4, numHeads: 4, maxPositions: 77, layerNormEps: 1e-5, act: 'gelu', projectionDim: 64 },
};

/**
 * A tiny architecture whose widths are neither SDXL's nor TINY_CONFIGS', with head counts the shape rules would not
 * guess (standard-widths.ts): UNet 32/64/128 with head dim 32 (the narrow-model rule says 16) and 16 norm groups
 * (rule: 8); text encoders 48 and 96 wide with 2 and 3 heads (rule: 4). Such a single file needs a config folder.
 */
export const NONSTANDARD_CONFIGS: ModelConfigs = {
  unet: {
    ...TINY_CONFIGS.unet, blockOutChannels: [32, 64, 128], numHeads: [0, 2, 4], normNumGroups: 16, timeEmbedDim: 128,
    crossAttentionDim: 48 + 96, projectionClassEmbeddingsInputDim: 6 * 8 + 96,
  },
  vae: TINY_CONFIGS.vae,
  textEncoder1: { ...TINY_CONFIGS.textEncoder1, hiddenSize: 48, intermediateSize: 192, numHeads: 2 },
  textEncoder2: { ...TINY_CONFIGS.textEncoder2, hiddenSize: 96, intermediateSize: 384, numHeads: 3, projectionDim: 96 },
};

/** Stable Diffusion XL base 1.0 architecture (stabilityai/stable-diffusion-xl-base-1.0 configs). */
export const FULL_CONFIGS: ModelConfigs = {
  unet: {
    inChannels: 4, outChannels: 4, blockOutChannels: [320, 640, 1280], layersPerBlock: 2, transformerLayersPerBlock: [0, 2, 10],
    midTransformerLayers: 10, numHeads: [0, 10, 20], crossAttentionDim: 2048, normNumGroups: 32, normEps: 1e-5, timeEmbedDim: 1280,
    addTimeEmbedDim: 256, projectionClassEmbeddingsInputDim: 2816, useLinearProjection: true,
  },
  vae: { inChannels: 3, latentChannels: 4, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, normNumGroups: 32, scalingFactor: 0.13025 },
  textEncoder1: { vocabSize: 49408, hiddenSize: 768, intermediateSize: 3072, numLayers: 12, numHeads: 12, maxPositions: 77, layerNormEps: 1e-5, act: 'quick_gelu' },
  textEncoder2: { vocabSize: 49408, hiddenSize: 1280, intermediateSize: 5120, numLayers: 32, numHeads: 20, maxPositions: 77, layerNormEps: 1e-5, act: 'gelu', projectionDim: 1280 },
};
