/**
 * SDXL AutoencoderKL as two ONNX graphs: the encoder (image → posterior mean/logvar/std) and the decoder
 * (latent → image). Structure follows diffusers `models/autoencoders/vae.py` (Encoder, Decoder),
 * `autoencoder_kl.py` (quant_conv / post_quant_conv, DiagonalGaussianDistribution), `unets/unet_2d_blocks.py`
 * (UNetMidBlock2D, DownEncoderBlock2D, UpDecoderBlock2D) and `resnet.py` (ResnetBlock2D without time embedding,
 * Downsample2D, Upsample2D). Hyper-parameters come from `VaeConfig`, so the tiny oracle VAE and the full-size
 * SDXL VAE share every line. No LoRA branches (adapters never touch the VAE).
 */
import { AtelierError } from '../contract/errors.ts';
import { GraphBuilder, type Value } from '../onnx/graph.ts';
import type { TensorRef, VaeConfig } from '../weights/types.ts';
import { vaeScaleFactor } from '../weights/vae-scale-factor.ts';
import { attention, conv2d, groupNorm, has, linear, newContext, ref, silu, upsample2x, weight, type LayerBuilders, type NetContext } from './blocks.ts';
import { NetworkSession, type BuiltNetwork, type SessionSettings } from './runtime.ts';

/** The part of an `SdxlModel` the VAE needs (an SdxlModel satisfies it). */
export interface VaeSource {
  weights: { vae: Map<string, TensorRef> };
  config: { vae: VaeConfig };
}

/** GroupNorm epsilon of every VAE norm (resnets, mid attention, conv_norm_out). */
const EPS = 1e-6;
/** diffusers clamps the posterior log-variance to this range (DiagonalGaussianDistribution). */
const LOGVAR_MIN = -30;
const LOGVAR_MAX = 20;

export { vaeScaleFactor };

function checkConfig(cfg: VaeConfig): void {
  const ok = cfg.blockOutChannels.length > 0 && cfg.layersPerBlock > 0 && cfg.normNumGroups > 0 && cfg.latentChannels > 0
    && cfg.blockOutChannels.every((c) => c > 0 && c % cfg.normNumGroups === 0);
  if (!ok) throw new AtelierError('CHECKPOINT_INVALID', `vae: unusable config ${JSON.stringify(cfg)}`);
}

/**
 * The VAE weights with mid-attention Linear weights in [C, C]: single-file checkpoints store them as 1×1 convs
 * [C, C, 1, 1] (same bytes); the loader normally squeezes them already, this accepts both.
 */
function canonicalWeights(weights: Map<string, TensorRef>): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  for (const [name, r] of weights) {
    const squeeze = name.includes('.mid_block.attentions.') && name.endsWith('.weight') && r.shape.length === 4 && r.shape[2] === 1 && r.shape[3] === 1;
    out.set(name, squeeze ? { ...r, shape: r.shape.slice(0, 2) } : r);
  }
  return out;
}

const unitAffines = new WeakMap<GraphBuilder, Map<number, { ones: Value; zeros: Value }>>();

/** Scale 1 / bias 0 vectors of length n, one pair per graph. */
function unitAffine(g: GraphBuilder, n: number): { ones: Value; zeros: Value } {
  let perGraph = unitAffines.get(g);
  if (!perGraph) unitAffines.set(g, (perGraph = new Map()));
  let pair = perGraph.get(n);
  if (!pair) perGraph.set(n, (pair = { ones: g.constF32(new Float32Array(n).fill(1), [n]), zeros: g.constF32(new Float32Array(n), [n]) }));
  return pair;
}


/** ResnetBlock2D without time embedding: norm1 → SiLU → conv1 → norm2 → SiLU → conv2, + (1×1 shortcut of) x. */
function resnet(ctx: NetContext, x: Value, p: string, groups: number): Value {
  const g = ctx.g;
  return g.scoped(p, () => {
    let h = silu(g, groupNorm(ctx, x, `${p}.norm1`, groups, EPS));
    h = conv2d(ctx, h, `${p}.conv1`);
    h = silu(g, groupNorm(ctx, h, `${p}.norm2`, groups, EPS));
    h = conv2d(ctx, h, `${p}.conv2`);
    const skip = has(ctx, `${p}.conv_shortcut.weight`) ? conv2d(ctx, x, `${p}.conv_shortcut`) : x;
    return g.op('Add', [skip, h]); // output_scale_factor 1
  });
}

/** Downsample2D(padding=0): zero-pad right and bottom by one, then 3×3 stride-2 conv (one Conv, asymmetric pads). */
function downsample(ctx: NetContext, x: Value, module: string): Value {
  const w = ref(ctx, `${module}.weight`);
  const inputs = [x, weight(ctx, `${module}.weight`)];
  if (has(ctx, `${module}.bias`)) inputs.push(weight(ctx, `${module}.bias`));
  // pads = [top, left, bottom, right]
  return ctx.g.op('Conv', inputs, { kernel_shape: [w.shape[2], w.shape[3]], strides: [2, 2], pads: [0, 0, 1, 1] });
}

/**
 * Upsample2D (nearest 2×, then 3×3 conv, pad 1) computed on the low-resolution input. Output pixel (2i+a, 2j+b)
 * only sees input rows {i−1, i} (a = 0) or {i, i+1} (a = 1), and likewise columns, so each of the four output
 * phases is a 2×2 conv whose taps are sums of the 3×3 taps (16/36 of the multiply-adds, no 4×-sized copy of the
 * input). One 2×2 conv with pads 1 computes all four phases at (h+1)×(w+1) positions: position r sees input rows
 * {r−1, r}, i.e. phase 0 of row r and phase 1 of row r−1. Putting phase 1 in DepthToSpace slot 0 and phase 0 in
 * slot 1 makes output row f land on row f+1 for both phases, so one Slice of [1, 2h+1) finishes it.
 */
function upsampleConv(ctx: NetContext, x: Value, module: string): Value {
  const g = ctx.g;
  const wRef = ref(ctx, `${module}.weight`);
  if (wRef.shape.length !== 4 || wRef.shape[2] !== 3 || wRef.shape[3] !== 3) return conv2d(ctx, upsample2x(g, x), module);
  const W = weight(ctx, `${module}.weight`); // [Co, Ci, 3, 3]
  const tap = (t: Value, axis: number, i: number) => g.op('Slice', [t, g.constI64([i]), g.constI64([i + 1]), g.constI64([axis])]);
  /** [phase 1 taps (k0+k1, k2), phase 0 taps (k0, k1+k2)] along `axis`: DepthToSpace slot order (constant-folded) */
  const slots = (t: Value, axis: number): Value[] => {
    const [k0, k1, k2] = [0, 1, 2].map((i) => tap(t, axis, i));
    return [g.op('Concat', [g.op('Add', [k0, k1]), k2], { axis }), g.op('Concat', [k0, g.op('Add', [k1, k2])], { axis })];
  };
  const kernels = slots(W, 2).flatMap((rows) => slots(rows, 3)); // 4 × [Co, Ci, 2, 2], slot order (a', b')
  const K = g.op('Concat', kernels, { axis: 0 }); // [4·Co, Ci, 2, 2]
  const inputs = [x, K];
  if (has(ctx, `${module}.bias`)) {
    const b = weight(ctx, `${module}.bias`);
    inputs.push(g.op('Concat', [b, b, b, b], { axis: 0 })); // [4·Co]
  }
  const y = g.op('Conv', inputs, { kernel_shape: [2, 2], pads: [1, 1, 1, 1] }); // [B, 4·Co, h+1, w+1]
  const up = g.op('DepthToSpace', [y], { blocksize: 2, mode: 'DCR' }); // [B, Co, 2h+2, 2w+2]
  const one = g.constI64([1, 1]);
  const end = g.constI64([-1, -1]);
  return g.op('Slice', [up, one, end, g.constI64([2, 3])]); // [B, Co, 2h, 2w]
}

/**
 * The mid-block attention: GroupNorm → one head over all h·w positions (head dim = C, scale 1/√C) with
 * to_q/to_k/to_v/to_out.0 Linear layers → + residual (rescale factor 1).
 */
function midAttention(ctx: NetContext, x: Value, p: string, groups: number): Value {
  const g = ctx.g;
  return g.scoped(p, () => {
    const C = ref(ctx, `${p}.to_q.weight`).shape[0];
    const n = groupNorm(ctx, x, `${p}.group_norm`, groups, EPS); // [B, C, H, W]
    const flat = g.op('Reshape', [n, g.constI64([0, C, -1])]); // [B, C, H*W]
    const t = g.op('Transpose', [flat], { perm: [0, 2, 1] }); // [B, H*W, C]
    const q = linear(ctx, t, `${p}.to_q`); // [B, H*W, C]
    const k = linear(ctx, t, `${p}.to_k`); // [B, H*W, C]
    const v = linear(ctx, t, `${p}.to_v`); // [B, H*W, C]
    const a = attention(g, q, k, v, 1); // [B, H*W, C]
    const o = linear(ctx, a, `${p}.to_out.0`); // [B, H*W, C]
    const back = g.op('Transpose', [o], { perm: [0, 2, 1] }); // [B, C, H*W]
    const img = g.op('Reshape', [back, g.op('Shape', [x])]); // [B, C, H, W]
    return g.op('Add', [img, x]);
  });
}

/** UNetMidBlock2D: resnet, attention, resnet (the attention is optional in diffusers, always present in SDXL). */
function midBlock(ctx: NetContext, x: Value, p: string, groups: number): Value {
  let h = resnet(ctx, x, `${p}.resnets.0`, groups);
  if (has(ctx, `${p}.attentions.0.to_q.weight`)) h = midAttention(ctx, h, `${p}.attentions.0`, groups);
  return resnet(ctx, h, `${p}.resnets.1`, groups);
}

function context(model: VaeSource, label: string, layers?: Partial<LayerBuilders>): { ctx: NetContext; cfg: VaeConfig } {
  const cfg = model.config.vae;
  checkConfig(cfg);
  const g = new GraphBuilder(label);
  return { ctx: newContext(g, canonicalWeights(model.weights.vae), 'vae', false, layers), cfg };
}

/** Encoder graph: `image` [B, 3, H, W] in [−1, 1] → `mean`, `logvar` (clamped), `std` [B, latent, H/f, W/f] (f = vaeScaleFactor). */
export function buildVaeEncoderGraph(model: VaeSource): BuiltNetwork {
  const { ctx, cfg } = context(model, 'vae_encoder');
  const g = ctx.g;
  const groups = cfg.normNumGroups;
  const levels = cfg.blockOutChannels.length;
  const image = g.input('image', 'float32', ['batch', cfg.inChannels, 'height', 'width']);
  let x = conv2d(ctx, image, 'encoder.conv_in');
  for (let i = 0; i < levels; i++) {
    const p = `encoder.down_blocks.${i}`;
    for (let j = 0; j < cfg.layersPerBlock; j++) x = resnet(ctx, x, `${p}.resnets.${j}`, groups);
    if (i < levels - 1) x = downsample(ctx, x, `${p}.downsamplers.0.conv`);
  }
  x = midBlock(ctx, x, 'encoder.mid_block', groups);
  x = silu(g, groupNorm(ctx, x, 'encoder.conv_norm_out', groups, EPS));
  x = conv2d(ctx, x, 'encoder.conv_out'); // [B, 2·latent, h, w]
  if (has(ctx, 'quant_conv.weight')) x = conv2d(ctx, x, 'quant_conv');
  const L = cfg.latentChannels;
  const [mean, rawLogvar] = g.opMulti('Split', [x, g.constI64([L, L])], { axis: 1 }, { numOutputs: 2 }); // 2 × [B, L, h, w]
  const logvar = g.op('Clip', [rawLogvar, g.scalar(LOGVAR_MIN), g.scalar(LOGVAR_MAX)]);
  const std = g.op('Exp', [g.op('Mul', [logvar, g.scalar(0.5)])]);
  const latentDims = ['batch', L, 'latent_height', 'latent_width'];
  g.output(mean, 'mean', 'float32', latentDims);
  g.output(logvar, 'logvar', 'float32', latentDims);
  g.output(std, 'std', 'float32', latentDims);
  return { graph: g, weights: model.weights.vae, loraSlots: ctx.loraSlots, label: 'vae_encoder' };
}

/** Decoder graph: `z` [B, latent, h, w] (already ÷ scaling factor) → `image` [B, 3, f·h, f·w] (f = vaeScaleFactor), unclamped. */
/** `layers`: builders of the Linear/Conv products other than fp32 (e.g. int8 convolutions from src/quant/) */
export function buildVaeDecoderGraph(model: VaeSource, layers?: Partial<LayerBuilders>): BuiltNetwork {
  const { ctx, cfg } = context(model, 'vae_decoder', layers);
  const g = ctx.g;
  const groups = cfg.normNumGroups;
  const levels = cfg.blockOutChannels.length;
  const z = g.input('z', 'float32', ['batch', cfg.latentChannels, 'latent_height', 'latent_width']);
  let x = has(ctx, 'post_quant_conv.weight') ? conv2d(ctx, z, 'post_quant_conv') : z;
  x = conv2d(ctx, x, 'decoder.conv_in');
  x = midBlock(ctx, x, 'decoder.mid_block', groups);
  for (let i = 0; i < levels; i++) {
    const p = `decoder.up_blocks.${i}`;
    for (let j = 0; j <= cfg.layersPerBlock; j++) x = resnet(ctx, x, `${p}.resnets.${j}`, groups);
    if (i < levels - 1) x = upsampleConv(ctx, x, `${p}.upsamplers.0.conv`);
  }
  x = silu(g, groupNorm(ctx, x, 'decoder.conv_norm_out', groups, EPS));
  x = conv2d(ctx, x, 'decoder.conv_out');
  g.output(x, 'image', 'float32', ['batch', 3, 'height', 'width']);
  return { graph: g, weights: model.weights.vae, loraSlots: ctx.loraSlots, label: 'vae_decoder' };
}

function checkInput(what: string, data: Float32Array, dims: number[], multiple: number): void {
  if (!dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new AtelierError('INVALID_INPUT', `${what}: dimensions ${JSON.stringify(dims)} must be positive integers`);
  }
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new AtelierError('INVALID_INPUT', `${what}: ${data.length} values for shape ${JSON.stringify(dims)} (needs ${n})`);
  if (dims[2] % multiple !== 0 || dims[3] % multiple !== 0) {
    throw new AtelierError('INVALID_INPUT', `${what}: size ${dims[2]}×${dims[3]} is not a multiple of ${multiple}`);
  }
}

export interface Posterior {
  mean: Float32Array;
  logvar: Float32Array;
  std: Float32Array;
}

/** The VAE encoder bound to a session. */
export class VaeEncoder {
  readonly scaleFactor: number;
  readonly latentChannels: number;
  private constructor(private readonly session: NetworkSession, cfg: VaeConfig) {
    this.scaleFactor = vaeScaleFactor(cfg);
    this.latentChannels = cfg.latentChannels;
  }

  static async create(model: VaeSource, settings?: SessionSettings): Promise<VaeEncoder> {
    const session = await NetworkSession.create(buildVaeEncoderGraph(model), settings);
    return new VaeEncoder(session, model.config.vae);
  }

  /** image [batch, 3, height, width] in [−1, 1] → posterior [batch, latent, height/f, width/f] (f = scaleFactor). */
  async encode(image: Float32Array, batch: number, height: number, width: number): Promise<Posterior> {
    const dims = [batch, 3, height, width];
    checkInput('vae encode image', image, dims, this.scaleFactor);
    const out = await this.session.run({ image: { data: image, dims } });
    return { mean: out.mean.data as Float32Array, logvar: out.logvar.data as Float32Array, std: out.std.data as Float32Array };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The VAE decoder bound to a session. */
export class VaeDecoder {
  readonly scaleFactor: number;
  readonly latentChannels: number;
  private constructor(private readonly session: NetworkSession, cfg: VaeConfig) {
    this.scaleFactor = vaeScaleFactor(cfg);
    this.latentChannels = cfg.latentChannels;
  }

  /** `layers`: e.g. the int8 resnet convolutions (`int8ConvLayers(await decoderInt8Convs(…))`, src/quant/) */
  static async create(model: VaeSource, settings?: SessionSettings, layers?: Partial<LayerBuilders>): Promise<VaeDecoder> {
    const session = await NetworkSession.create(buildVaeDecoderGraph(model, layers), settings);
    return new VaeDecoder(session, model.config.vae);
  }

  /** z [batch, latent, h, w] (already ÷ scaling factor) → image [batch, 3, f·h, f·w] (f = scaleFactor), raw (about [−1, 1], unclamped). */
  async decode(z: Float32Array, batch: number, h: number, w: number): Promise<Float32Array> {
    const dims = [batch, this.latentChannels, h, w];
    checkInput('vae decode latent', z, dims, 1);
    const out = await this.session.run({ z: { data: z, dims } });
    return out.image.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
