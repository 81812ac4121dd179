/**
 * Calibration statistics of convolutions: a graph built with `convStatsLayers(modules)` gets, for each listed
 * convolution x → y, the outputs `stat:<module>:{r,lo,hi}` (input range with 0 included, output min and max), and
 * `mergeStats` turns the runs' statistics into output ranges per unit of input range (src/quant/int8-conv.ts).
 */
import { AtelierError } from '../contract/errors.ts';
import type { GraphBuilder, Value } from '../onnx/graph.ts';
import { fp32Conv, type LayerBuilders } from '../networks/blocks.ts';
import type { ConvRange } from './int8-conv.ts';

/** One convolution's statistics of one run. */
export interface ConvStats {
  r: number;
  lo: number;
  hi: number;
}

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

/** The convolution hook of a calibration build: fp32 convolutions, with statistics outputs for `modules`. */
export function convStatsLayers(modules: ReadonlySet<string>): Partial<LayerBuilders> {
  return {
    conv: (ctx, x, module, geometry) => {
      const y = fp32Conv(ctx, x, module, geometry);
      if (modules.has(module)) addConvStats(ctx.g, module, x, y);
      return y;
    },
  };
}

/** The ratio ranges of every calibrated module, widest over all calibration runs. */
export function mergeStats(runs: readonly Record<string, ConvStats>[]): Map<string, ConvRange> {
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
