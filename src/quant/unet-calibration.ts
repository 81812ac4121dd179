/**
 * Calibration of the UNet's int8 resnet convolutions (`--quantize int8-full`; the procedure, its cache and the
 * refusal below an SNR floor are src/quant/calibrate.ts). The calibration runs' inputs come from the caller
 * (src/engine/calibration-inputs.ts: CFG pairs of noise latents at a few timesteps, as the sampler calls the UNet).
 * The UNet is built with its weights' Linear kernels (int8 for a quantised cache), as it runs in production.
 */
import type { SdxlModel } from '../weights/types.ts';
import { buildUNetGraph, UNET_OUTPUT } from '../networks/unet.ts';
import { calibratedInt8Convs, type CalibratedOptions, type CalibrationInputs, type CalibrationSpec } from './calibrate.ts';
import { quantisableUNetConvs } from './quantisable-convs.ts';
import { quantizedLinearLayers } from './quantized-linear.ts';

type UNetSource = Pick<SdxlModel, 'weights' | 'config' | 'fingerprint' | 'source'>;

/** How the UNet is calibrated. */
function unetCalibrationSpec(model: UNetSource, lora: boolean): CalibrationSpec {
  const linear = quantizedLinearLayers(model.weights.unet);
  return {
    network: 'unet',
    setting: '--quantize / ATELIER_QUANTIZE',
    value: 'int8-full',
    field: 'quantize',
    what: 'UNet',
    instead: '"int8" (Linear layers only) or "off"',
    modules: quantisableUNetConvs(model.weights.unet),
    weights: model.weights.unet,
    build: (layers) => buildUNetGraph(model, { lora, layers: { ...linear, ...layers } }),
    output: UNET_OUTPUT,
  };
}

/** The UNet's int8 resnet convolutions: calibration from the cache (or calibrated now on `inputs` and cached), weights quantised. */
export function unetInt8Convs(
  model: UNetSource,
  inputs: CalibrationInputs,
  opts: Omit<CalibratedOptions, 'fingerprint' | 'source'> & { lora?: boolean },
): ReturnType<typeof calibratedInt8Convs> {
  const { lora, ...rest } = opts;
  return calibratedInt8Convs(unetCalibrationSpec(model, lora ?? false), inputs, { ...rest, fingerprint: model.fingerprint, source: model.source });
}
