/**
 * The inputs of the int8 calibration runs (src/quant/calibrate.ts), made here because they need the pipeline's
 * conditioning and the sampler's random generator. Fixed prompt, timesteps and seeds: a checkpoint's calibration is
 * reproducible, and a cached one stays valid.
 */
import type { TensorIn } from '../onnx/session.ts';
import { buildConditioning, type EncoderSet } from '../pipeline/conditioning.ts';
import { TorchGenerator } from '../sampling/rng.ts';
import { TIME_ID_COUNT, textEmbedDim } from '../networks/unet.ts';
import type { CalibrationInputs } from '../quant/calibrate.ts';
import type { UNetConfig, VaeConfig } from '../weights/types.ts';

const UNET_SIZE = 32;
const UNET_TIMESTEPS = [999, 500, 50];
const UNET_PROMPT = 'a photograph of a lighthouse on a rocky coast at sunset, detailed, sharp focus';

/**
 * The UNet's calibration runs (`--quantize int8-full`): 32×32 latents of unit-variance Gaussian noise (the scaled
 * model input every sampler feeds the UNet) at timesteps 999, 500 and 50, each a CFG pair [uncond, cond] — the
 * checkpoint's own text encoders' embeddings of a calibration prompt and the zero (unconditional) embeddings — as
 * the sampler calls the UNet across a denoising run.
 */
export function unetCalibrationInputs(c: UNetConfig, encoders: EncoderSet): CalibrationInputs {
  return async () => {
    const cond = await buildConditioning(encoders, { prompt: UNET_PROMPT, negativePrompt: null, guidanceScale: 7.5, numImages: 1, height: 8 * UNET_SIZE, width: 8 * UNET_SIZE });
    const b = cond.batch;
    const g = new TorchGenerator(3000);
    return UNET_TIMESTEPS.map((t) => ({
      sample: { data: g.randn(b * c.inChannels * UNET_SIZE * UNET_SIZE), dims: [b, c.inChannels, UNET_SIZE, UNET_SIZE] },
      timestep: { data: new Float32Array(b).fill(t), dims: [b] },
      encoder_hidden_states: { data: cond.encoderHiddenStates, dims: [b, cond.seqLen, c.crossAttentionDim] },
      text_embeds: { data: cond.textEmbeds, dims: [b, textEmbedDim(c)] },
      time_ids: { data: cond.timeIds, dims: [b, TIME_ID_COUNT] },
    }));
  };
}

/** Bilinear (align-corners) upsampling of [c, n, n] planes to [c, m, m]. */
export function upsamplePlanes(src: Float32Array, c: number, n: number, m: number): Float32Array {
  const out = new Float32Array(c * m * m);
  const f = (n - 1) / (m - 1);
  const at = (ch: number, y: number, x: number) => src[(ch * n + y) * n + x];
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < m; y++) {
      const y0 = Math.min(n - 2, Math.floor(y * f));
      const ty = y * f - y0;
      for (let x = 0; x < m; x++) {
        const x0 = Math.min(n - 2, Math.floor(x * f));
        const tx = x * f - x0;
        const top = at(ch, y0, x0) * (1 - tx) + at(ch, y0, x0 + 1) * tx;
        const bottom = at(ch, y0 + 1, x0) * (1 - tx) + at(ch, y0 + 1, x0 + 1) * tx;
        out[(ch * m + y) * m + x] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return out;
}

function scaled(v: Float32Array, std: number): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const k = std / Math.sqrt(s / v.length || 1);
  return v.map((x) => x * k);
}

/**
 * The decoder's calibration batch: `z` [4, latentChannels, 32, 32], already ÷ scaling factor — two latents of white
 * Gaussian noise, two of smooth noise (8×8 noise upsampled bilinearly), each at unit variance: the statistics of
 * latents the UNet produces (the ranges are ratios, so the size does not matter).
 */
export function decoderCalibrationBatch(latentChannels: number, scalingFactor: number): TensorIn {
  const size = 32;
  const per = latentChannels * size * size;
  const data = new Float32Array(4 * per);
  for (let i = 0; i < 4; i++) {
    const g = new TorchGenerator(1000 + i);
    const z = i < 2 ? g.randn(per) : upsamplePlanes(g.randn(latentChannels * 64), latentChannels, 8, size);
    data.set(scaled(z, 1 / scalingFactor), i * per);
  }
  return { data, dims: [4, latentChannels, size, size] };
}

/** The VAE decoder's calibration runs (`--vae-quantize int8`): one latent of the batch per run, as production decodes one image at a time. */
export function decoderCalibrationInputs(vae: Pick<VaeConfig, 'latentChannels' | 'scalingFactor'>): CalibrationInputs {
  return () => {
    const z = decoderCalibrationBatch(vae.latentChannels, vae.scalingFactor);
    const [n, ...rest] = z.dims;
    const per = z.data.length / n;
    return Array.from({ length: n }, (_, i) => ({ z: { data: z.data.subarray(i * per, (i + 1) * per), dims: [1, ...rest] } }));
  };
}
