/**
 * Quantisation schemes of Linear layers and their stored layouts. Measured on the 2-core AVX-512 VNNI CPU, full SDXL
 * UNet, 64×64 latents, batch 2, random weights (bench/quant-unet.ts): fp32 11.3 s, `int8` 5.2 s, `int8-block` 8.5 s
 * per call.
 * - `int8`: DynamicQuantizeMatMul — int8 weights per output channel [in, out], activations uint8 per tensor at run time.
 * - `int8-block`: MatMulNBits bits 8, block 128 along K, accuracy_level 4 — activations quantised to int8 per row
 *   and block of 128 (robust to outlier channels, slower).
 * Convolutions are not covered by these schemes (onnxruntime's CPU ConvInteger is uint8×uint8 with per-tensor zero
 * points and measured ≤1.5× the fp32 NCHWc Conv); the calibrated int8 convolutions are src/quant/int8-conv.ts.
 */
import type { QuantScheme, UNetQuantization } from '../contract/tables.ts';
import type { DType, TensorRef } from '../weights/types.ts';
import { quantizeBlockwise, quantizeInt8PerColumn } from './quantizers.ts';

/** MatMulNBits block size along K (`int8-block`) */
export const BLOCK = 128;

/** Suffix of the tensor holding a quantised weight's scales. */
export const SCALE_SUFFIX = '_scale';

/**
 * The Linear scheme of a `--quantize` choice, and whether its resnet convolutions are int8 (`int8-full` = `int8`
 * Linear layers plus calibrated int8 resnet convolutions).
 */
export function quantizationParts(q: UNetQuantization): { linear: QuantScheme; int8Convs: boolean } {
  return q === 'int8-full' ? { linear: 'int8', int8Convs: true } : { linear: q, int8Convs: false };
}

/** Which tensors a scheme quantises: 2-D Linear weights inside transformer blocks (`…attentions.N…`, proj_in/out too). */
export function isQuantizable(name: string, ref: TensorRef): boolean {
  return name.endsWith('.weight') && ref.shape.length === 2 && /(^|\.)attentions\.\d+\./.test(name);
}

/** dtype of a scheme's stored weights */
export function quantDtype(scheme: QuantScheme): DType {
  return scheme === 'int8' ? 'I8' : 'U8';
}

/** Stored shapes of a canonical weight [out, in] and of its scales in `scheme`'s layout. */
export function quantShape(scheme: QuantScheme, out: number, inF: number): { q: number[]; s: number[] } {
  if (scheme === 'int8') return { q: [inF, out], s: [out] };
  const kBlocks = Math.ceil(inF / BLOCK);
  return { q: [out, kBlocks, BLOCK], s: [out, kBlocks] };
}

/** The quantised bytes and scales of one canonical weight [out, in] in `scheme`'s stored layout. */
export function quantizeFor(scheme: QuantScheme, w: Float32Array, out: number, inF: number): { q: Uint8Array; s: Float32Array } {
  if (scheme === 'int8') {
    const p = quantizeInt8PerColumn(w, out, inF);
    return { q: new Uint8Array(p.q.buffer, p.q.byteOffset, p.q.byteLength), s: p.scale };
  }
  const p = quantizeBlockwise(w, out, inF, 8, BLOCK);
  return { q: p.packed, s: p.scales };
}
