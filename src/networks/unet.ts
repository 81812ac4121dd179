/**
 * The SDXL UNet (diffusers UNet2DConditionModel, addition_embed_type "text_time") as one ONNX graph, plus a small
 * runtime wrapper. Hyper-parameters come from `SdxlModel.config.unet`, so the tiny oracle model and full-size SDXL
 * share this code. Structure: diffusers models/unets/unet_2d_condition.py (forward) and unet_2d_blocks.py.
 */
import { AtelierError } from '../contract/errors.ts';
import { GraphBuilder, type Value } from '../onnx/graph.ts';
import type { TensorIn } from '../onnx/session.ts';
import type { SdxlModel, UNetConfig } from '../weights/types.ts';
import { conv2d, groupNorm, linear, newContext, silu, type LayerBuilders, type LoraSlot, type NetContext } from './blocks.ts';
import { NetworkSession, type BuiltNetwork, type SessionSettings } from './runtime.ts';
import { downsample, resnetBlock, sinusoidalEmbedding, timestepEmbedding, transformer2d, upsample } from './unet-blocks.ts';

/** SDXL's micro-conditioning: (orig_h, orig_w, crop_top, crop_left, target_h, target_w) */
export const TIME_ID_COUNT = 6;
/** diffusers' SDXL config: flip_sin_to_cos True, freq_shift 0 (fixed for every SDXL checkpoint) */
const FLIP_SIN_TO_COS = true;
const FREQ_SHIFT = 0;

export const UNET_INPUTS = ['sample', 'timestep', 'encoder_hidden_states', 'text_embeds', 'time_ids'] as const;
export const UNET_OUTPUT = 'noise_pred';

/** Width of `text_embeds` (pooled text_encoder_2 output): projection input minus the time-id part. */
export function textEmbedDim(c: UNetConfig): number {
  return c.projectionClassEmbeddingsInputDim - TIME_ID_COUNT * c.addTimeEmbedDim;
}

function checkConfig(c: UNetConfig): void {
  const levels = c.blockOutChannels.length;
  if (levels < 1 || c.transformerLayersPerBlock.length !== levels || c.numHeads.length !== levels) {
    throw new AtelierError(
      'CHECKPOINT_INVALID',
      `unet: blockOutChannels ${JSON.stringify(c.blockOutChannels)}, transformerLayersPerBlock ${JSON.stringify(c.transformerLayersPerBlock)} and numHeads ${JSON.stringify(c.numHeads)} disagree in length`,
    );
  }
  for (let i = 0; i < levels; i++) {
    if (c.transformerLayersPerBlock[i] > 0 && !(c.numHeads[i] > 0 && c.blockOutChannels[i] % c.numHeads[i] === 0)) {
      throw new AtelierError('CHECKPOINT_INVALID', `unet: level ${i} has ${c.blockOutChannels[i]} channels and ${c.numHeads[i]} heads`);
    }
  }
  if (textEmbedDim(c) <= 0) {
    throw new AtelierError('CHECKPOINT_INVALID', `unet: projectionClassEmbeddingsInputDim ${c.projectionClassEmbeddingsInputDim} leaves no room for text_embeds`);
  }
}

/** Timestep embedding + SDXL added embedding (text_embeds ⊕ sinusoids of the 6 time ids) → emb [B, T]. */
function embeddings(ctx: NetContext, c: UNetConfig, timestep: Value, textEmbeds: Value, timeIds: Value): Value {
  const g = ctx.g;
  return g.scoped('embedding', () => {
    const t = g.op('Unsqueeze', [timestep, g.constI64([1])]); // [B, 1]
    const tProj = sinusoidalEmbedding(ctx, t, c.blockOutChannels[0], FREQ_SHIFT, FLIP_SIN_TO_COS); // [B, C0]
    const temb = timestepEmbedding(ctx, tProj, 'time_embedding'); // [B, T]
    const ids = g.op('Unsqueeze', [timeIds, g.constI64([2])]); // [B, 6, 1]
    const idsProj = sinusoidalEmbedding(ctx, ids, c.addTimeEmbedDim, FREQ_SHIFT, FLIP_SIN_TO_COS); // [B, 6, d]
    const idsFlat = g.op('Reshape', [idsProj, g.constI64([0, TIME_ID_COUNT * c.addTimeEmbedDim])]); // [B, 6·d]
    const addIn = g.op('Concat', [textEmbeds, idsFlat], { axis: -1 }); // [B, proj]
    const aug = timestepEmbedding(ctx, addIn, 'add_embedding'); // [B, T]
    return g.op('Add', [temb, aug]);
  });
}

/** Build the UNet graph: inputs sample/timestep/encoder_hidden_states/text_embeds/time_ids, output noise_pred. */
/** `layers`: builders of the Linear/Conv products other than fp32 (e.g. int8 kernels from src/quant/) */
export function buildUNetGraph(model: Pick<SdxlModel, 'weights' | 'config'>, opts: { lora?: boolean; layers?: Partial<LayerBuilders> } = {}): BuiltNetwork {
  const c = model.config.unet;
  checkConfig(c);
  const weights = model.weights.unet;
  const g = new GraphBuilder('sdxl_unet');
  const ctx = newContext(g, weights, 'unet', opts.lora ?? false, opts.layers);
  const levels = c.blockOutChannels.length;
  const groups = c.normNumGroups;
  const eps = c.normEps;

  const sample = g.input('sample', 'float32', ['batch', c.inChannels, 'height', 'width']);
  const timestep = g.input('timestep', 'float32', ['batch']);
  const context = g.input('encoder_hidden_states', 'float32', ['batch', 'seq', c.crossAttentionDim]);
  const textEmbeds = g.input('text_embeds', 'float32', ['batch', textEmbedDim(c)]);
  const timeIds = g.input('time_ids', 'float32', ['batch', TIME_ID_COUNT]);

  const emb = embeddings(ctx, c, timestep, textEmbeds, timeIds); // [B, T]
  const embAct = silu(g, emb); // every resnet's time_emb_proj sees SiLU(emb)

  let h = conv2d(ctx, sample, 'conv_in'); // [B, C0, H, W]
  const skips: Value[] = [h];

  // Down path: per level, layersPerBlock × (resnet [+ transformer]), then a stride-2 conv except on the last level.
  for (let level = 0; level < levels; level++) {
    const depth = c.transformerLayersPerBlock[level];
    for (let i = 0; i < c.layersPerBlock; i++) {
      h = resnetBlock(ctx, h, embAct, `down_blocks.${level}.resnets.${i}`, groups, eps);
      if (depth > 0) h = transformer2d(ctx, h, context, `down_blocks.${level}.attentions.${i}`, depth, c.numHeads[level], groups);
      skips.push(h);
    }
    if (level < levels - 1) {
      h = downsample(ctx, h, `down_blocks.${level}.downsamplers.0`);
      skips.push(h);
    }
  }

  // Mid block (UNetMidBlock2DCrossAttn): resnet, transformer, resnet; heads of the last level.
  h = resnetBlock(ctx, h, embAct, 'mid_block.resnets.0', groups, eps);
  h = transformer2d(ctx, h, context, 'mid_block.attentions.0', c.midTransformerLayers, c.numHeads[levels - 1], groups);
  h = resnetBlock(ctx, h, embAct, 'mid_block.resnets.1', groups, eps);

  // Up path: levels reversed; each resnet takes the newest remaining skip concatenated on channels.
  for (let j = 0; j < levels; j++) {
    const level = levels - 1 - j;
    const depth = c.transformerLayersPerBlock[level];
    for (let i = 0; i <= c.layersPerBlock; i++) {
      const skip = skips.pop();
      if (skip === undefined) throw new AtelierError('INTERNAL', `unet: skip stack empty at up_blocks.${j}.resnets.${i}`);
      h = g.op('Concat', [h, skip], { axis: 1 }); // [B, C + Cskip, H, W]
      h = resnetBlock(ctx, h, embAct, `up_blocks.${j}.resnets.${i}`, groups, eps);
      if (depth > 0) h = transformer2d(ctx, h, context, `up_blocks.${j}.attentions.${i}`, depth, c.numHeads[level], groups);
    }
    if (j < levels - 1) h = upsample(ctx, h, skips[skips.length - 1], `up_blocks.${j}.upsamplers.0`);
  }

  h = silu(g, groupNorm(ctx, h, 'conv_norm_out', groups, eps));
  h = conv2d(ctx, h, 'conv_out'); // [B, out, H, W]
  g.output(h, UNET_OUTPUT, 'float32', ['batch', c.outChannels, 'height', 'width']);
  return { graph: g, weights, loraSlots: ctx.loraSlots, label: 'unet' };
}

export interface UNetInputs {
  /** latents [B, inChannels, height, width] */
  sample: Float32Array;
  batch: number;
  /** latent height and width */
  height: number;
  width: number;
  /** [B] */
  timestep: Float32Array;
  /** [B, seqLen, crossAttentionDim] */
  encoderHiddenStates: Float32Array;
  seqLen: number;
  /** [B, textEmbedDim] (pooled text_encoder_2 output) */
  textEmbeds: Float32Array;
  /** [B, 6] */
  timeIds: Float32Array;
}

/** The UNet bound to an onnxruntime session (one session for every batch, size and sequence length). */
export class UNet {
  readonly loraSlots: readonly LoraSlot[];
  readonly config: UNetConfig;
  private readonly net: NetworkSession;

  private constructor(net: NetworkSession, config: UNetConfig) {
    this.net = net;
    this.config = config;
    this.loraSlots = net.loraSlots;
  }

  static async create(model: SdxlModel, settings: SessionSettings & { lora?: boolean; layers?: Partial<LayerBuilders> } = {}): Promise<UNet> {
    const { lora, layers, ...rest } = settings;
    const built = buildUNetGraph(model, { lora: lora ?? false, layers });
    return new UNet(await NetworkSession.create(built, rest), model.config.unet);
  }

  /** One forward pass; returns noise_pred [B, outChannels, height, width]. */
  async run(inputs: UNetInputs, lora?: Record<string, TensorIn>): Promise<Float32Array> {
    const c = this.config;
    const { batch: b, height: h, width: w, seqLen: s } = inputs;
    const expect = (name: string, got: number, want: number) => {
      if (got !== want) throw new AtelierError('INTERNAL', `unet: ${name} has ${got} values, expected ${want} (batch ${b}, ${h}×${w}, seq ${s})`);
    };
    expect('sample', inputs.sample.length, b * c.inChannels * h * w);
    expect('timestep', inputs.timestep.length, b);
    expect('encoderHiddenStates', inputs.encoderHiddenStates.length, b * s * c.crossAttentionDim);
    expect('textEmbeds', inputs.textEmbeds.length, b * textEmbedDim(c));
    expect('timeIds', inputs.timeIds.length, b * TIME_ID_COUNT);
    const out = await this.net.run(
      {
        sample: { data: inputs.sample, dims: [b, c.inChannels, h, w] },
        timestep: { data: inputs.timestep, dims: [b] },
        encoder_hidden_states: { data: inputs.encoderHiddenStates, dims: [b, s, c.crossAttentionDim] },
        text_embeds: { data: inputs.textEmbeds, dims: [b, textEmbedDim(c)] },
        time_ids: { data: inputs.timeIds, dims: [b, TIME_ID_COUNT] },
      },
      lora,
    );
    const pred = out[UNET_OUTPUT];
    if (!pred || !(pred.data instanceof Float32Array)) throw new AtelierError('INTERNAL', 'unet: session returned no float32 noise_pred');
    return pred.data;
  }

  async release(): Promise<void> {
    await this.net.release();
  }
}
