/**
 * Calibration of the UNet's int8 resnet convolutions (`--quantize int8-full`; the procedure, its cache and the
 * refusal below an SNR floor are src/networks/int8-calibration.ts).
 *
 * The runs: 32×32 latents of unit-variance Gaussian noise (the scaled model input every sampler feeds the UNet) at
 * timesteps 999, 500 and 50, each a CFG pair — the checkpoint's own text encoders' embeddings of a calibration prompt
 * and the zero (unconditional) embeddings — as the sampler calls the UNet across a denoising run.
 */
import { TorchGenerator } from '../sampling/rng.ts';
import { buildConditioning, type EncoderSet } from '../pipeline/conditioning.ts';
import type { SdxlModel, TensorRef } from '../weights/types.ts';
import { quantisableResnetConvs } from './int8-conv.ts';
import { calibratedInt8Convs, type CalibratedOptions, type CalibrationSpec } from './int8-calibration.ts';
import { buildUNetGraph, TIME_ID_COUNT, UNET_OUTPUT, textEmbedDim } from './unet.ts';

/**
 * The UNet convolutions `int8-full` runs in int8: conv1/conv2 of the mid block's and the up blocks' resnets. The down
 * blocks stay fp32: their error reaches every later layer and, through the skip connections, the up path — measured
 * on the random-weight SDXL UNet (noise prediction vs fp32, per CFG-pair run at t = 999 / 500 / 50): all 34 resnet
 * convolutions 22.1 / 19.7 / 18.4 dB, mid + up blocks (22) 26.7 / 26.4 / 25.9 dB.
 */
export function quantisableUNetConvs(weights: ReadonlyMap<string, TensorRef>): string[] {
  return quantisableResnetConvs(weights).filter((m) => m.startsWith('mid_block.') || m.startsWith('up_blocks.'));
}

const SIZE = 32;
const TIMESTEPS = [999, 500, 50];
const PROMPT = 'a photograph of a lighthouse on a rocky coast at sunset, detailed, sharp focus';

/** How the UNet is calibrated; `encoders` give the calibration prompt's embeddings. */
function unetCalibrationSpec(model: Pick<SdxlModel, 'weights' | 'config'>, encoders: EncoderSet, opts: { lora?: boolean } = {}): CalibrationSpec {
  const c = model.config.unet;
  return {
    network: 'unet',
    setting: '--quantize / ATELIER_QUANTIZE',
    value: 'int8-full',
    field: 'quantize',
    what: 'UNet',
    instead: '"int8" (Linear layers only) or "off"',
    modules: quantisableUNetConvs(model.weights.unet),
    weights: model.weights.unet,
    build: (convs) => buildUNetGraph(model, { lora: opts.lora ?? false, convs }),
    // one CFG pair [uncond, cond] per run and timestep, as the sampler calls the UNet
    feeds: async () => {
      const cond = await buildConditioning(encoders, { prompt: PROMPT, negativePrompt: null, guidanceScale: 7.5, numImages: 1, height: 8 * SIZE, width: 8 * SIZE });
      const b = cond.batch;
      const g = new TorchGenerator(3000);
      return TIMESTEPS.map((t) => ({
        sample: { data: g.randn(b * c.inChannels * SIZE * SIZE), dims: [b, c.inChannels, SIZE, SIZE] },
        timestep: { data: new Float32Array(b).fill(t), dims: [b] },
        encoder_hidden_states: { data: cond.encoderHiddenStates, dims: [b, cond.seqLen, c.crossAttentionDim] },
        text_embeds: { data: cond.textEmbeds, dims: [b, textEmbedDim(c)] },
        time_ids: { data: cond.timeIds, dims: [b, TIME_ID_COUNT] },
      }));
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
