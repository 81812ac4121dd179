/** Deterministic inputs and requests for the benchmark (random data; only shapes matter for timing). */
import type { GenerateRequest, RgbImage } from '../src/contract/types.ts';
import { textEmbedDim, type UNetInputs } from '../src/networks/unet.ts';
import type { UNetConfig } from '../src/weights/types.ts';
import { vaeScaleFactor } from '../src/weights/vae-scale-factor.ts';
import { FULL_CONFIGS } from '../src/weights/test-model-spec.ts';
import { uniform } from './random.ts';

/** The benchmark's model is SDXL: latent cells → pixels (the size time ids) by its VAE's factor. */
const SDXL_VAE_SCALE = vaeScaleFactor(FULL_CONFIGS.vae);

/** The UNet inputs of every bench: one CFG call, batch 2 (negative + positive), latents h × w, 77 tokens; seeds 7, 8, 9. */
export function unetInputs(c: UNetConfig, h: number, w: number, batch = 2, vaeScale = SDXL_VAE_SCALE): UNetInputs {
  const seq = 77;
  return {
    sample: uniform(batch * c.inChannels * h * w, 7),
    batch,
    height: h,
    width: w,
    timestep: new Float32Array(batch).fill(500),
    encoderHiddenStates: uniform(batch * seq * c.crossAttentionDim, 8),
    seqLen: seq,
    textEmbeds: uniform(batch * textEmbedDim(c), 9),
    timeIds: new Float32Array(Array.from({ length: batch }, () => [vaeScale * h, vaeScale * w, 0, 0, vaeScale * h, vaeScale * w]).flat()),
  };
}

export function randomImage(width: number, height: number, seed: number): RgbImage {
  const f = uniform(width * height * 3, seed);
  const data = new Uint8Array(f.length);
  for (let i = 0; i < f.length; i++) data[i] = Math.round((f[i] + 1) * 127.5);
  return { width, height, data };
}

export const PROMPT = 'a watercolor painting of a lighthouse on a cliff at sunset, seagulls, dramatic clouds';

export function request(over: Partial<GenerateRequest> & Pick<GenerateRequest, 'task' | 'width' | 'height' | 'steps'>): GenerateRequest {
  return {
    prompt: PROMPT,
    negativePrompt: '',
    strength: 1,
    numImages: 1,
    guidanceScale: 7.5,
    guidanceRescale: 0,
    seed: 42,
    sampler: 'euler',
    timestepSpacing: 'leading',
    loras: [],
    embeddings: [],
    ...over,
  };
}
