/**
 * The Linear-layer hook of a graph build for quantised weights (src/quant/quantized-weights.ts): the main product
 * of every quantised Linear runs through onnxruntime's reduced-precision kernel of the scheme; the others stay fp32
 * (`fp32Linear`). Bias and LoRA branches are added by `linear` (src/networks/blocks.ts) on top, in fp32.
 */
import { AtelierError } from '../contract/errors.ts';
import { MS_DOMAIN, type Value } from '../onnx/graph.ts';
import { fp32Linear, type LayerBuilders, type LinearBuilder, type NetContext } from '../networks/blocks.ts';
import type { TensorRef } from '../weights/types.ts';
import { BLOCK, SCALE_SUFFIX } from './linear-schemes.ts';
import { QuantizedWeights } from './quantized-weights.ts';

/** x [..., in] → [..., out] through the quantised weight of `module`. */
function quantizedMatMul(ctx: NetContext, q: QuantizedWeights, x: Value, module: string): Value {
  const name = `${module}.weight`;
  const wRef = q.quant.get(name);
  const sRef = q.quant.get(`${name}${SCALE_SUFFIX}`);
  const shape = ctx.weights.get(name)?.shape;
  if (!wRef || !sRef || !shape) throw new AtelierError('INTERNAL', `${ctx.component}: quantised weight "${name}" is incomplete in the cache`);
  const [N, K] = shape;
  const W = ctx.g.quantWeight(`${ctx.component}:${name}`, wRef);
  const S = ctx.g.weight(`${ctx.component}:${name}${SCALE_SUFFIX}`, sRef);
  if (q.scheme === 'int8') return ctx.g.op('DynamicQuantizeMatMul', [x, W, S], {}, { domain: MS_DOMAIN });
  return ctx.g.op('MatMulNBits', [x, W, S], { K, N, bits: 8, block_size: BLOCK, accuracy_level: 4 }, { domain: MS_DOMAIN });
}

/** The Linear builder of quantised weights: their kernel for each quantised weight, fp32 for the rest. */
export function quantizedLinear(q: QuantizedWeights): LinearBuilder {
  return (ctx, x, module) => (q.quant.has(`${module}.weight`) ? quantizedMatMul(ctx, q, x, module) : fp32Linear(ctx, x, module));
}

/** The layer hooks a component's weights need: the quantised Linear builder for `QuantizedWeights`, none otherwise. */
export function quantizedLinearLayers(weights: ReadonlyMap<string, TensorRef>): Partial<LayerBuilders> {
  return weights instanceof QuantizedWeights ? { linear: quantizedLinear(weights) } : {};
}
