/**
 * Calibration of the UNet's int8 resnet convolutions (`--quantize int8-full`; the procedure, its cache and the
 * refusal below an SNR floor are src/networks/int8-calibration.ts).
 *
 * The batch: 32×32 latents of unit-variance Gaussian noise (the scaled model input every sampler feeds the UNet) at
 * timesteps 999, 500 and 50, each with the checkpoint's own text encoders' embeddings of a calibration prompt and
 * with the zero (unconditional) embeddings — 6 samples, the statistics of a CFG pair across a denoising run.
 */
import { TorchGenerator } from '../sampling/rng.ts';
import { buildConditioning, type EncoderSet } from '../pipeline/conditioning.ts';
import type { SdxlModel } from '../weights/types.ts';
import { quantisableResnetConvs } from './int8-conv.ts';
import { calibratedInt8Convs, type CalibratedOptions, type CalibrationSpec } from './int8-calibration.ts';
import { buildUNetGraph, TIME_ID_COUNT, UNET_OUTPUT, textEmbedDim } from './unet.ts';

const SIZE = 32;
const TIMESTEPS = [999, 500, 50];
const PROMPT = 'a photograph of a lighthouse on a rocky coast at sunset, detailed, sharp focus';

/** How the UNet is calibrated; `encoders` give the calibration prompt's embeddings. */
export function unetCalibrationSpec(model: Pick<SdxlModel, 'weights' | 'config'>, encoders: EncoderSet, opts: { lora?: boolean } = {}): CalibrationSpec {
  const c = model.config.unet;
  return {
    network: 'unet',
    setting: '--quantize / ATELIER_QUANTIZE',
    field: 'quantize',
    what: 'UNet',
    instead: '"int8" (Linear layers only) or "off"',
    modules: quantisableResnetConvs(model.weights.unet),
    weights: model.weights.unet,
    build: (convs) => buildUNetGraph(model, { lora: opts.lora ?? false, convs }),
    feeds: async () => {
      const cond = await buildConditioning(encoders, { prompt: PROMPT, negativePrompt: null, guidanceScale: 7.5, numImages: TIMESTEPS.length, height: 8 * SIZE, width: 8 * SIZE });
      const b = cond.batch; // [uncond, cond] per timestep
      const sample = new TorchGenerator(3000).randn(b * c.inChannels * SIZE * SIZE);
      const timestep = Float32Array.from(TIMESTEPS.flatMap((t) => [t, t]));
      return {
        sample: { data: sample, dims: [b, c.inChannels, SIZE, SIZE] },
        timestep: { data: timestep, dims: [b] },
        encoder_hidden_states: { data: cond.encoderHiddenStates, dims: [b, cond.seqLen, c.crossAttentionDim] },
        text_embeds: { data: cond.textEmbeds, dims: [b, textEmbedDim(c)] },
        time_ids: { data: cond.timeIds, dims: [b, TIME_ID_COUNT] },
      };
    },
    output: UNET_OUTPUT,
  };
}

/** The UNet's int8 resnet convolutions: calibration from the cache (or calibrated now and cached), weights quantised. */
export function unetInt8Convs(
  model: Pick<SdxlModel, 'weights' | 'config' | 'fingerprint'>,
  encoders: EncoderSet,
  opts: Omit<CalibratedOptions, 'fingerprint'> & { lora?: boolean },
): ReturnType<typeof calibratedInt8Convs> {
  return calibratedInt8Convs(unetCalibrationSpec(model, encoders, { lora: opts.lora }), { ...opts, fingerprint: model.fingerprint });
}
