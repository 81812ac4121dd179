/**
 * Building blocks shared by every network graph. Weights are looked up by the checkpoint's canonical (diffusers)
 * names; every Linear and Conv can carry a low-rank (LoRA) branch whose factors are graph INPUTS, so adapters are
 * switched per request without rebuilding or reloading the session (empty rank-0 tensors when unused).
 */
import { AtelierError } from '../contract/errors.ts';
import { GraphBuilder, MS_DOMAIN, type Value } from '../onnx/graph.ts';
import type { TensorRef } from '../weights/types.ts';

/** One module that accepts a LoRA branch: y += up(down(x)). */
export interface LoraSlot {
  /** canonical module name, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q` */
  module: string;
  kind: 'linear' | 'conv';
  inFeatures: number;
  outFeatures: number;
  /** conv kernel [kh, kw] (the down factor uses it; up is 1×1); [1, 1] for linear */
  kernel: [number, number];
  /** graph input names of the factors: down [r, in] or [r, in, kh, kw]; up [out, r] or [out, r, 1, 1] */
  downInput: string;
  upInput: string;
}

export interface NetContext {
  g: GraphBuilder;
  weights: Map<string, TensorRef>;
  /** add LoRA branch inputs to Linear/Conv modules */
  lora: boolean;
  /** filled while building: every module that got a LoRA branch */
  loraSlots: LoraSlot[];
  /** weight-name prefix inside the component, e.g. 'text_model.' (rarely needed) */
  component: string;
  /** how the main product of each Linear and Conv is built (fp32 unless a caller supplies other builders) */
  layers: LayerBuilders;
}

/**
 * The main product of a Linear layer, x [..., in] → [..., out] through `${module}.weight`, WITHOUT its bias (and
 * without a LoRA branch): `linear` adds both on top, whatever builder made the product.
 */
export type LinearBuilder = (ctx: NetContext, x: Value, module: string) => Value;

/** A convolution's geometry, worked out by `conv2d` from its weight and options. */
export interface ConvGeometry {
  /** [Cout, Cin, kh, kw] (a 2-D weight [Cout, Cin] is a 1×1 convolution) */
  shape: readonly [number, number, number, number];
  stride: number;
  pad: number;
}

/** A convolution x [B, Cin, H, W] → [B, Cout, H', W'] through `${module}.weight` WITH its bias (no LoRA branch). */
export type ConvBuilder = (ctx: NetContext, x: Value, module: string, geometry: ConvGeometry) => Value;

/**
 * The hooks of a graph build: how a Linear layer and how a convolution compute their main product. The defaults
 * (`FP32_LAYERS`) are fp32 ONNX ops; other builders (src/quant/: int8 kernels, calibration statistics) come in
 * through `newContext` and the network builders' `layers` option.
 */
export interface LayerBuilders {
  linear: LinearBuilder;
  conv: ConvBuilder;
}

/** fp32 Linear product: FusedMatMul with the weight as stored ([out, in], or [in, out] when transposed). */
export const fp32Linear: LinearBuilder = (ctx, x, module) => {
  const wRef = ref(ctx, `${module}.weight`);
  const W = weight(ctx, `${module}.weight`);
  return ctx.g.op('FusedMatMul', [x, W], { transB: wRef.transposed ? 0 : 1 }, { domain: MS_DOMAIN }); // [..., out]
};

/** fp32 convolution: one Conv op with the weight (a 2-D weight viewed as [Cout, Cin, 1, 1]) and the bias. */
export const fp32Conv: ConvBuilder = (ctx, x, module, { shape, stride, pad }) => {
  const g = ctx.g;
  const wRef = ref(ctx, `${module}.weight`);
  const [, , kh, kw] = shape;
  const w = wRef.shape.length === 4 ? weight(ctx, `${module}.weight`) : g.weight(`${ctx.component}:${module}.weight`, { ...wRef, shape: [...shape] });
  const inputs = [x, w];
  if (has(ctx, `${module}.bias`)) inputs.push(weight(ctx, `${module}.bias`));
  return g.op('Conv', inputs, { kernel_shape: [kh, kw], strides: [stride, stride], pads: [pad, pad, pad, pad] });
};

export const FP32_LAYERS: Readonly<LayerBuilders> = Object.freeze({ linear: fp32Linear, conv: fp32Conv });

/** A build context; `layers` replaces any of the fp32 builders (absent = the fp32 graph). */
export function newContext(g: GraphBuilder, weights: Map<string, TensorRef>, component: string, lora: boolean, layers: Partial<LayerBuilders> = {}): NetContext {
  return { g, weights, lora, loraSlots: [], component, layers: { ...FP32_LAYERS, ...layers } };
}

export function ref(ctx: NetContext, name: string): TensorRef {
  const r = ctx.weights.get(name);
  if (!r) throw new AtelierError('CHECKPOINT_INVALID', `${ctx.component}: the checkpoint has no tensor "${name}"`);
  return r;
}

export function has(ctx: NetContext, name: string): boolean {
  return ctx.weights.has(name);
}

export function weight(ctx: NetContext, name: string): Value {
  return ctx.g.weight(`${ctx.component}:${name}`, ref(ctx, name));
}

function loraSlot(ctx: NetContext, module: string, kind: 'linear' | 'conv', inF: number, outF: number, kernel: [number, number]): LoraSlot {
  const g = ctx.g;
  const downInput = `lora_down:${module}`;
  const upInput = `lora_up:${module}`;
  const downDims = kind === 'linear' ? ['r', inF] : ['r', inF, kernel[0], kernel[1]];
  const upDims = kind === 'linear' ? [outF, 'r'] : [outF, 'r', 1, 1];
  g.input(downInput, 'float32', downDims.map((d) => (d === 'r' ? `rank:${module}` : d)));
  g.input(upInput, 'float32', upDims.map((d) => (d === 'r' ? `rank:${module}` : d)));
  const slot: LoraSlot = { module, kind, inFeatures: inF, outFeatures: outF, kernel, downInput, upInput };
  ctx.loraSlots.push(slot);
  return slot;
}

/** y = x·Wᵀ + b over the last axis. x [..., in] → [..., out] */
export function linear(ctx: NetContext, x: Value, module: string, opts: { bias?: boolean; lora?: boolean } = {}): Value {
  const g = ctx.g;
  const wRef = ref(ctx, `${module}.weight`);
  const [outF, inF] = wRef.shape;
  let y = ctx.layers.linear(ctx, x, module); // [..., out]
  if (ctx.lora && opts.lora !== false) {
    const s = loraSlot(ctx, module, 'linear', inF, outF, [1, 1]);
    const h = g.op('FusedMatMul', [x, s.downInput], { transB: 1 }, { domain: MS_DOMAIN }); // [..., r]
    const d = g.op('FusedMatMul', [h, s.upInput], { transB: 1 }, { domain: MS_DOMAIN }); // [..., out]
    y = g.op('Add', [y, d]);
  }
  if (opts.bias !== false && has(ctx, `${module}.bias`)) y = g.op('Add', [y, weight(ctx, `${module}.bias`)]);
  return y;
}

/**
 * 2-D convolution, x [B, Cin, H, W] → [B, Cout, H', W']; weight [Cout, Cin, kh, kw]. The main product comes from
 * `ctx.layers.conv` (fp32 Conv by default); a LoRA branch stays fp32 on top of it.
 */
export function conv2d(ctx: NetContext, x: Value, module: string, opts: { stride?: number; pad?: number; lora?: boolean } = {}): Value {
  const g = ctx.g;
  const wRef = ref(ctx, `${module}.weight`);
  const [outF, inF, kh, kw] = wRef.shape.length === 4 ? wRef.shape : [wRef.shape[0], wRef.shape[1], 1, 1];
  const stride = opts.stride ?? 1;
  const pad = opts.pad ?? Math.floor(kh / 2);
  const attrs = { kernel_shape: [kh, kw], strides: [stride, stride], pads: [pad, pad, pad, pad] };
  let y = ctx.layers.conv(ctx, x, module, { shape: [outF, inF, kh, kw], stride, pad });
  if (ctx.lora && opts.lora !== false) {
    const s = loraSlot(ctx, module, 'conv', inF, outF, [kh, kw]);
    const h = g.op('Conv', [x, s.downInput], attrs); // [B, r, H', W']
    const d = g.op('Conv', [h, s.upInput], { kernel_shape: [1, 1] }); // [B, Cout, H', W']
    y = g.op('Add', [y, d]);
  }
  return y;
}

/**
 * GroupNorm with per-channel affine over x [B, C, H, W], as InstanceNormalization over [B, G, C/G·H·W] (one kernel)
 * followed by the affine: onnxruntime has no CPU kernel for GroupNormalization and expands it into ~15 element-wise
 * ops (ReduceMean, Cast, Sub, Div, …), which costs more than the norm itself.
 */
export function groupNorm(ctx: NetContext, x: Value, module: string, groups: number, eps: number): Value {
  const g = ctx.g;
  const wRef = ref(ctx, `${module}.weight`);
  const bRef = ref(ctx, `${module}.bias`);
  const c = wRef.shape[0];
  const gamma = g.weight(`${ctx.component}:${module}.weight[C,1,1]`, { ...wRef, shape: [c, 1, 1] });
  const beta = g.weight(`${ctx.component}:${module}.bias[C,1,1]`, { ...bRef, shape: [c, 1, 1] });
  const grouped = g.op('Reshape', [x, g.constI64([0, groups, -1])]); // [B, G, C/G·H·W]
  const ones = g.constF32(new Float32Array(groups).fill(1), [groups]);
  const zeros = g.constF32(new Float32Array(groups), [groups]);
  const normed = g.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: { float: eps } }); // [B, G, C/G·H·W]
  const back = g.op('Reshape', [normed, g.op('Shape', [x])]); // [B, C, H, W]
  return g.op('Add', [g.op('Mul', [back, gamma]), beta]); // [B, C, H, W]
}

/** LayerNorm over the last axis. */
export function layerNorm(ctx: NetContext, x: Value, module: string, eps: number): Value {
  return ctx.g.op('LayerNormalization', [x, weight(ctx, `${module}.weight`), weight(ctx, `${module}.bias`)], { axis: -1, epsilon: { float: eps } });
}

export function silu(g: GraphBuilder, x: Value): Value {
  return g.op('Mul', [x, g.op('Sigmoid', [x])]);
}

/** exact (erf) GELU */
export function gelu(g: GraphBuilder, x: Value): Value {
  return g.op('Gelu', [x]);
}

/** x·σ(1.702x), CLIP-L's activation */
export function quickGelu(g: GraphBuilder, x: Value): Value {
  return g.op('QuickGelu', [x], { alpha: { float: 1.702 } }, { domain: MS_DOMAIN });
}

/** Multi-head scaled-dot-product attention. q [B, S, H·D], k/v [B, L, H·D] → [B, S, H·D]. Optional additive mask via `bias`. */
export function attention(g: GraphBuilder, q: Value, k: Value, v: Value, heads: number): Value {
  return g.op('MultiHeadAttention', [q, k, v], { num_heads: heads }, { domain: MS_DOMAIN });
}

/** Nearest-neighbour 2× upsampling of [B, C, H, W]. */
export function upsample2x(g: GraphBuilder, x: Value): Value {
  const scales = g.constF32([1, 1, 2, 2], [4]);
  return g.op('Resize', [x, '', scales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
}

/**
 * Feeds for every LoRA slot when no adapter touches it: rank-1 ZERO factors, so the branches add exactly 0.
 * (Rank-0 factors would cost nothing, but onnxruntime's CPU Conv with 0 input channels sometimes leaves stale memory
 * in its output instead of zeros — NaNs seen in tests — so every branch gets one zero rank; < 0.5 % of a step.)
 */
export function emptyLoraFeeds(slots: readonly LoraSlot[]): Record<string, { data: Float32Array; dims: number[] }> {
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const s of slots) {
    const k = s.kind === 'linear' ? 1 : s.kernel[0] * s.kernel[1];
    feeds[s.downInput] = { data: new Float32Array(s.inFeatures * k), dims: s.kind === 'linear' ? [1, s.inFeatures] : [1, s.inFeatures, s.kernel[0], s.kernel[1]] };
    feeds[s.upInput] = { data: new Float32Array(s.outFeatures), dims: s.kind === 'linear' ? [s.outFeatures, 1] : [s.outFeatures, 1, 1, 1] };
  }
  return feeds;
}
