/**
 * Building blocks of the SDXL UNet (diffusers UNet2DConditionModel): sinusoidal embeddings, ResnetBlock2D,
 * Transformer2DModel with linear projections (BasicTransformerBlock + GEGLU), Downsample2D, Upsample2D.
 * Semantics follow diffusers' models/embeddings.py, resnet.py, attention.py, transformers/transformer_2d.py,
 * unets/unet_2d_blocks.py (diffusers 0.29); weight names are diffusers' names inside the `unet` component.
 */
import type { Value } from '../onnx/graph.ts';
import { attention, conv2d, gelu, groupNorm, layerNorm, linear, ref, silu, type NetContext } from './blocks.ts';

/** eps of the GroupNorm in front of every Transformer2DModel (diffusers hard-codes 1e-6) */
const TRANSFORMER_NORM_EPS = 1e-6;
/** eps of the LayerNorms inside BasicTransformerBlock (diffusers default norm_eps) */
const BLOCK_NORM_EPS = 1e-5;


/**
 * Frequencies of diffusers' `get_timestep_embedding` (max_period 10000), computed in float32 the way PyTorch does:
 * exp(−ln(10000)·i / (half − shift)), i < half.
 */
export function sinusoidFrequencies(dim: number, freqShift: number): Float32Array {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(half);
  const negLog = Math.fround(-Math.log(10000));
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(negLog * i) / (half - freqShift));
    out[i] = Math.exp(exponent);
  }
  return out;
}

/**
 * Sinusoidal embedding with flip_sin_to_cos (cos first): x [..., 1] (any rank, last axis 1) → [..., dim].
 * Embeddings.py `get_timestep_embedding`; dim must be even (SDXL: 320 and 256).
 */
export function sinusoidalEmbedding(ctx: NetContext, x: Value, dim: number, freqShift: number, flipSinToCos: boolean): Value {
  const g = ctx.g;
  const freqs = sinusoidFrequencies(dim, freqShift);
  const args = g.op('Mul', [x, g.constF32(freqs, [freqs.length])]); // [..., half]
  const sin = g.op('Sin', [args]);
  const cos = g.op('Cos', [args]);
  return g.op('Concat', flipSinToCos ? [cos, sin] : [sin, cos], { axis: -1 }); // [..., dim]
}

/** TimestepEmbedding: linear_1 → SiLU → linear_2. */
export function timestepEmbedding(ctx: NetContext, x: Value, module: string): Value {
  const h = silu(ctx.g, linear(ctx, x, `${module}.linear_1`));
  return linear(ctx, h, `${module}.linear_2`);
}

/**
 * ResnetBlock2D (time_embedding_norm "default", output_scale_factor 1): x [B, Cin, H, W], embAct = SiLU(emb) [B, T]
 * → [B, Cout, H, W]. The 1×1 conv_shortcut exists when the channel count changes.
 */
export function resnetBlock(ctx: NetContext, x: Value, embAct: Value, module: string, groups: number, eps: number): Value {
  const g = ctx.g;
  return g.scoped(module, () => {
    let h = silu(g, groupNorm(ctx, x, `${module}.norm1`, groups, eps));
    h = conv2d(ctx, h, `${module}.conv1`);
    const t = linear(ctx, embAct, `${module}.time_emb_proj`); // [B, Cout]
    h = g.op('Add', [h, g.op('Unsqueeze', [t, g.constI64([2, 3])])]); // [B, Cout, H, W] + [B, Cout, 1, 1]
    h = silu(g, groupNorm(ctx, h, `${module}.norm2`, groups, eps));
    h = conv2d(ctx, h, `${module}.conv2`);
    const shortcut = ctx.weights.has(`${module}.conv_shortcut.weight`) ? conv2d(ctx, x, `${module}.conv_shortcut`) : x;
    return g.op('Add', [shortcut, h]);
  });
}

/** Attention (diffusers attention_processor.Attention): q from x, k/v from `context` (self-attention when x). x [B, N, C] */
function attentionModule(ctx: NetContext, x: Value, context: Value, module: string, heads: number): Value {
  const q = linear(ctx, x, `${module}.to_q`); // [B, N, C]
  const k = linear(ctx, context, `${module}.to_k`); // [B, L, C]
  const v = linear(ctx, context, `${module}.to_v`); // [B, L, C]
  const o = attention(ctx.g, q, k, v, heads); // [B, N, C]
  return linear(ctx, o, `${module}.to_out.0`);
}

/** GEGLU feed-forward: ff.net.0.proj → split (hidden, gate) → hidden·GELU(gate) → ff.net.2. x [B, N, C] */
function feedForward(ctx: NetContext, x: Value, module: string): Value {
  const g = ctx.g;
  const proj = linear(ctx, x, `${module}.net.0.proj`); // [B, N, 2·inner]
  const inner = ref(ctx, `${module}.net.0.proj.weight`).shape[0] / 2;
  const [hidden, gate] = g.opMulti('Split', [proj, g.constI64([inner, inner])], { axis: -1 }, { numOutputs: 2 }); // 2 × [B, N, inner]
  const h = g.op('Mul', [hidden, gelu(g, gate)]); // [B, N, inner]
  return linear(ctx, h, `${module}.net.2`);
}

/** BasicTransformerBlock: self-attention, cross-attention, GEGLU FF, each pre-LayerNorm and residual. x [B, N, C] */
function basicTransformerBlock(ctx: NetContext, x: Value, context: Value, module: string, heads: number): Value {
  const g = ctx.g;
  return g.scoped(module, () => {
    let h = layerNorm(ctx, x, `${module}.norm1`, BLOCK_NORM_EPS);
    x = g.op('Add', [attentionModule(ctx, h, h, `${module}.attn1`, heads), x]);
    h = layerNorm(ctx, x, `${module}.norm2`, BLOCK_NORM_EPS);
    x = g.op('Add', [attentionModule(ctx, h, context, `${module}.attn2`, heads), x]);
    h = layerNorm(ctx, x, `${module}.norm3`, BLOCK_NORM_EPS);
    return g.op('Add', [feedForward(ctx, h, `${module}.ff`), x]);
  });
}

/**
 * Transformer2DModel with use_linear_projection: GroupNorm → tokens → proj_in → `layers` blocks → proj_out → back
 * to [B, C, H, W] + residual. x [B, C, H, W], context [B, L, cross].
 */
export function transformer2d(ctx: NetContext, x: Value, context: Value, module: string, layers: number, heads: number, groups: number): Value {
  const g = ctx.g;
  return g.scoped(module, () => {
    const channels = ref(ctx, `${module}.proj_in.weight`).shape[1];
    const n = groupNorm(ctx, x, `${module}.norm`, groups, TRANSFORMER_NORM_EPS); // [B, C, H, W]
    const nhwc = g.op('Transpose', [n], { perm: [0, 2, 3, 1] }); // [B, H, W, C]
    let t = g.op('Reshape', [nhwc, g.constI64([0, -1, channels])]); // [B, H·W, C]
    t = linear(ctx, t, `${module}.proj_in`); // [B, H·W, C]
    for (let i = 0; i < layers; i++) t = basicTransformerBlock(ctx, t, context, `${module}.transformer_blocks.${i}`, heads);
    t = linear(ctx, t, `${module}.proj_out`); // [B, H·W, C]
    const nchw = g.op('Transpose', [t], { perm: [0, 2, 1] }); // [B, C, H·W]
    const back = g.op('Reshape', [nchw, g.op('Shape', [x])]); // [B, C, H, W]
    return g.op('Add', [back, x]);
  });
}

/** Downsample2D: 3×3 conv, stride 2, padding 1. */
export function downsample(ctx: NetContext, x: Value, module: string): Value {
  return conv2d(ctx, x, `${module}.conv`, { stride: 2, pad: 1 });
}

/**
 * Upsample2D: nearest-neighbour resize to the spatial size of `like` (the skip it meets next: 2× normally, as
 * diffusers' forward_upsample_size for odd sizes), then a 3×3 conv. x [B, C, h, w] → [B, C, H, W].
 */
export function upsample(ctx: NetContext, x: Value, like: Value, module: string): Value {
  const g = ctx.g;
  const bc = g.op('Shape', [x], { start: 0, end: 2 }); // [2] = (B, C)
  const hw = g.op('Shape', [like], { start: 2, end: 4 }); // [2] = (H, W)
  const sizes = g.op('Concat', [bc, hw], { axis: 0 }); // [4]
  const up = g.op('Resize', [x, '', '', sizes], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }); // [B, C, H, W]
  return conv2d(ctx, up, `${module}.conv`);
}
