/**
 * int8 resnet convolutions (opt-in: `--vae-quantize int8` for the VAE decoder, `--quantize int8-full` for the UNet's
 * mid and up blocks): the 3×3 conv1/conv2 of those resnets run as onnxruntime's QLinearConv — uint8 activations ×
 * int8 weights, which its CPU int8 kernels compute at 1.3× (128 channels, 512²) to 3× (512 channels, 128²) the rate
 * of the fp32 NCHWc convolution (measured on the 2-core Sapphire Rapids machine, see README "Performance").
 *
 * Every quantised convolution reads a post-SiLU activation (bounded below by −0.28, no outlier channels: GroupNorm
 * runs just before it). Its input is quantised per tensor at run time (DynamicQuantizeLinear: scale = range/255);
 * weights per output channel, symmetric. QLinearConv also needs the OUTPUT's scale before it runs; that comes from a
 * calibration once per checkpoint (src/quant/calibrate.ts): the reference network runs on calibration inputs and
 * records, for each convolution, its output range relative to its input range (lo/R, hi/R). At run time the output
 * range is that ratio times the actual input range, widened by `MARGIN`, so the quantisation follows the input's
 * scale. Convolutions that read the residual stream (up/downsampling, 1×1 shortcuts, conv_in/conv_out) stay fp32.
 */
import { AtelierError } from '../contract/errors.ts';
import type { GraphBuilder, Value } from '../onnx/graph.ts';
import { fp32Conv, type LayerBuilders } from '../networks/blocks.ts';
import { readTensorF32 } from '../weights/safetensors.ts';
import type { TensorRef } from '../weights/types.ts';
import { quantizeInt8PerRow } from './quantizers.ts';

/** Calibrated output range of one convolution per unit of input range (R = max(x, 0) − min(x, 0)). */
export interface ConvRange {
  lo: number;
  hi: number;
}

/** One convolution's int8 weights and output quantisation. */
export interface Int8Conv {
  /** [Co, Ci, kh, kw] */
  shape: readonly [number, number, number, number];
  /** weights [Co, Ci·kh·kw], symmetric per output channel */
  q: Int8Array;
  /** [Co] */
  scale: Float32Array;
  bias?: Float32Array;
  /** output scale = input scale × this */
  outScalePerInScale: number;
  /** output zero point, 0 … 255 */
  outZeroPoint: number;
}

/** module name → its int8 convolution (absent modules stay fp32) */
export type Int8Convs = ReadonlyMap<string, Int8Conv>;

/** Widening of the calibrated output range (a run whose outputs exceed the calibrated ratio is clipped beyond it). */
export const MARGIN = 1.5;

/** Output quantisation of a calibrated range: the range widened by `margin` about its centre, 0 kept inside. */
export function outputQuantization(range: ConvRange, margin = MARGIN): { outScalePerInScale: number; outZeroPoint: number } {
  const c = (range.lo + range.hi) / 2;
  const half = ((range.hi - range.lo) / 2) * margin;
  const lo = Math.min(0, c - half);
  const hi = Math.max(0, c + half);
  const width = hi - lo > 0 ? hi - lo : 1;
  // input scale s_x = R/255 and output scale s_y = (hi − lo)·R/255, so s_y = s_x·(hi − lo)
  return { outScalePerInScale: width, outZeroPoint: Math.min(255, Math.max(0, Math.round((-lo / width) * 255))) };
}

/** int8 weights of the calibrated convolutions (read from the fp32 weights) with their output quantisation. */
export async function int8Convs(weights: ReadonlyMap<string, TensorRef>, ranges: ReadonlyMap<string, ConvRange>): Promise<Map<string, Int8Conv>> {
  const out = new Map<string, Int8Conv>();
  for (const [module, range] of ranges) {
    const w = weights.get(`${module}.weight`);
    if (!w || w.shape.length !== 4) throw new AtelierError('INTERNAL', `vae int8: no 4-D weight for ${module}`);
    const [co, ci, kh, kw] = w.shape;
    const { q, scale } = quantizeInt8PerRow(await readTensorF32(w), co, ci * kh * kw);
    const b = weights.get(`${module}.bias`);
    out.set(module, { shape: [co, ci, kh, kw], q, scale, ...(b ? { bias: await readTensorF32(b) } : {}), ...outputQuantization(range) });
  }
  return out;
}

/**
 * y = conv(x) through QLinearConv: x quantised at run time, the int32 bias from the run's input scale, the output
 * dequantised to float32 (the GroupNorm after it runs in float).
 */
export function int8Conv(g: GraphBuilder, x: Value, conv: Int8Conv, pad: number): Value {
  const [co, ci, kh, kw] = conv.shape;
  const [xq, xs, xz] = g.opMulti('DynamicQuantizeLinear', [x], {}, { numOutputs: 3 });
  const w = g.constI8(conv.q, [co, ci, kh, kw]);
  const ws = g.constF32(conv.scale, [co]);
  const wz = g.constI8(new Int8Array(co), [co]);
  const ys = g.op('Mul', [xs, g.scalar(conv.outScalePerInScale)]);
  const yz = g.constU8(new Uint8Array([conv.outZeroPoint]), []);
  const inputs = [xq, xs, xz, w, ws, wz, ys, yz];
  if (conv.bias) {
    // int32 bias in units of s_x·s_w (QLinearConv's contract), bounded so that a tiny input scale cannot overflow
    const units = g.op('Div', [g.constF32(conv.bias, [co]), g.op('Mul', [xs, ws])]);
    const bounded = g.op('Clip', [g.op('Round', [units]), g.scalar(-2e9), g.scalar(2e9)]);
    inputs.push(g.op('Cast', [bounded], { to: 6 })); // int32
  }
  const yq = g.op('QLinearConv', inputs, { kernel_shape: [kh, kw], pads: [pad, pad, pad, pad] });
  return g.op('DequantizeLinear', [yq, ys, yz]);
}

/** The convolution hook of a graph build: QLinearConv for the modules in `convs`, fp32 for the others. */
export function int8ConvLayers(convs: Int8Convs): Partial<LayerBuilders> {
  return {
    conv: (ctx, x, module, geometry) => {
      const q = convs.get(module);
      if (!q) return fp32Conv(ctx, x, module, geometry);
      if (geometry.stride !== 1) throw new AtelierError('INTERNAL', `${ctx.component}: int8 convolution ${module} must have stride 1`);
      return int8Conv(ctx.g, x, q, geometry.pad);
    },
  };
}
