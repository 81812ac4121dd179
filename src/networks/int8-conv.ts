/**
 * int8 resnet convolutions (opt-in: `--vae-quantize int8` for the VAE decoder, `--quantize int8-full` for the UNet's
 * mid and up blocks): the 3×3 conv1/conv2 of those resnets run as onnxruntime's QLinearConv — uint8 activations × int8 weights, which its CPU
 * int8 kernels compute at 1.3× (128 channels, 512²) to 3× (512 channels, 128²) the rate of the fp32 NCHWc convolution
 * (measured on the 2-core Sapphire Rapids machine, see README "Performance").
 *
 * Every quantised convolution reads a post-SiLU activation (bounded below by −0.28, no outlier channels: GroupNorm
 * runs just before it). Its input is quantised per tensor at run time (DynamicQuantizeLinear: scale = range/255);
 * weights per output channel, symmetric. QLinearConv also needs the OUTPUT's scale before it runs; that comes from a
 * calibration once per checkpoint (src/networks/int8-calibration.ts): the reference network runs on calibration inputs
 * and records, for each convolution, its output range relative to its input range (lo/R, hi/R). At run time the
 * output range is that ratio times the actual input range, widened by `MARGIN`, so the quantisation follows the
 * input's scale. Convolutions that read the residual stream (up/downsampling, 1×1 shortcuts, conv_in/conv_out) stay
 * fp32.
 */
import { AtelierError } from '../contract/errors.ts';
import type { GraphBuilder, Value } from '../onnx/graph.ts';
import { readTensorF32 } from '../weights/safetensors.ts';
import type { TensorRef } from '../weights/types.ts';
import { quantizeInt8PerRow } from './quantize.ts';

/** `--vae-quantize` values */
export { VAE_QUANTIZATIONS as VAE_QUANT_SCHEMES, type VaeQuantScheme } from '../contract/tables.ts';

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

/** How a graph's convolutions are built: fp32 (empty), fp32 with calibration outputs, or some in int8. */
export interface ConvMode {
  int8?: Int8Convs;
  /** modules that get `stat:<module>:{r,lo,hi}` outputs (calibration) */
  calibrate?: ReadonlySet<string>;
}

/** Resnet conv1/conv2 modules with 3×3 weights under `prefix` (the convolutions this scheme quantises). */
export function quantisableResnetConvs(weights: ReadonlyMap<string, TensorRef>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [name, r] of weights) {
    if (!name.startsWith(prefix) || !/(^|\.)resnets\.\d+\.conv[12]\.weight$/.test(name)) continue;
    if (r.shape.length === 4 && r.shape[2] === 3 && r.shape[3] === 3) out.push(name.slice(0, -'.weight'.length));
  }
  return out;
}

/** Widening of the calibrated output range (a run whose outputs exceed the calibrated ratio is clipped beyond it). */
export const MARGIN = 1.5;

/** Output names of a convolution's calibration statistics. */
export function statNames(module: string): { r: string; lo: string; hi: string } {
  return { r: `stat:${module}:r`, lo: `stat:${module}:lo`, hi: `stat:${module}:hi` };
}

/** Calibration outputs of a convolution x → y: input range (0 included) and output min/max, as scalars. */
export function addConvStats(g: GraphBuilder, module: string, x: Value, y: Value): void {
  const zero = g.scalar(0);
  const max = (t: Value) => g.op('ReduceMax', [t], { keepdims: 0 });
  const min = (t: Value) => g.op('ReduceMin', [t], { keepdims: 0 });
  const n = statNames(module);
  g.output(g.op('Sub', [g.op('Max', [max(x), zero]), g.op('Min', [min(x), zero])]), n.r, 'float32', []);
  g.output(min(y), n.lo, 'float32', []);
  g.output(max(y), n.hi, 'float32', []);
}

/** The ratio ranges of every calibrated module, widest over all calibration runs. */
export function mergeStats(runs: readonly Record<string, { r: number; lo: number; hi: number }>[]): Map<string, ConvRange> {
  const out = new Map<string, ConvRange>();
  for (const run of runs) {
    for (const [module, s] of Object.entries(run)) {
      if (!(s.r > 0) || !Number.isFinite(s.lo) || !Number.isFinite(s.hi)) {
        throw new AtelierError('INTERNAL', `vae int8 calibration: unusable statistics for ${module} (${JSON.stringify(s)})`);
      }
      const lo = Math.min(0, s.lo / s.r);
      const hi = Math.max(0, s.hi / s.r);
      const prev = out.get(module);
      out.set(module, prev ? { lo: Math.min(prev.lo, lo), hi: Math.max(prev.hi, hi) } : { lo, hi });
    }
  }
  return out;
}

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

/** 10·log10(var(reference) / mean squared difference); Infinity when equal. */
export function snrDb(reference: Float32Array, test: Float32Array): number {
  if (reference.length !== test.length || reference.length === 0) throw new AtelierError('INTERNAL', `snrDb: ${reference.length} vs ${test.length} values`);
  let mean = 0;
  for (const v of reference) mean += v;
  mean /= reference.length;
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    signal += (reference[i] - mean) ** 2;
    noise += (reference[i] - test[i]) ** 2;
  }
  return noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
}
