/**
 * Calibration of the VAE decoder's int8 convolutions (`--vae-quantize int8`; the procedure, its cache and the refusal
 * below an SNR floor are src/quant/calibrate.ts). The calibration runs' inputs come from the caller
 * (src/engine/calibration-inputs.ts: one latent per run, as the decoder decodes one image at a time).
 */
import { buildVaeDecoderGraph, type VaeSource } from '../networks/vae.ts';
import { calibratedInt8Convs, type CalibratedOptions, type CalibrationInputs, type CalibrationSpec } from './calibrate.ts';
import { quantisableDecoderConvs } from './quantisable-convs.ts';

/** How the decoder is calibrated. */
function decoderCalibrationSpec(model: VaeSource): CalibrationSpec {
  return {
    network: 'vae_decoder',
    setting: '--vae-quantize / ATELIER_VAE_QUANTIZE',
    value: 'int8',
    field: 'vae-quantize',
    what: 'VAE decoder',
    instead: '"off"',
    modules: quantisableDecoderConvs(model.weights.vae),
    weights: model.weights.vae,
    build: (layers) => buildVaeDecoderGraph(model, layers),
    output: 'image',
  };
}

export interface Int8DecoderSource extends VaeSource {
  fingerprint: string;
  source: string;
}

/** The decoder's int8 convolutions: calibration from the cache (or calibrated now on `inputs` and cached), weights quantised. */
export function decoderInt8Convs(model: Int8DecoderSource, inputs: CalibrationInputs, opts: Omit<CalibratedOptions, 'fingerprint' | 'source'>): ReturnType<typeof calibratedInt8Convs> {
  return calibratedInt8Convs(decoderCalibrationSpec(model), inputs, { ...opts, fingerprint: model.fingerprint, source: model.source });
}
