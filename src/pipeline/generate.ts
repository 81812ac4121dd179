/**
 * Text-to-image and image-to-image with SDXL semantics, step by step as diffusers'
 * StableDiffusionXLPipeline / StableDiffusionXLImg2ImgPipeline (v0.29) do them, including the order of random draws.
 */
import type { AdapterFeeds } from '../adapters/target.ts';
import { AtelierError } from '../contract/errors.ts';
import type { GenerateRequest, RgbImage } from '../contract/types.ts';
import type { UNetInputs } from '../networks/unet.ts';
import { TorchGenerator } from '../sampling/rng.ts';
import { makePlan, addNoise, initialLatents, sample } from '../sampling/index.ts';
import { applyCfg, rescaleNoiseCfg } from '../sampling/guidance.ts';
import { checkAborted } from './cancel.ts';
import { buildConditioning, type EncoderSet } from './conditioning.ts';
import { imageToTensor, tensorToImages, latentPreview } from './image-tensor.ts';
import { decodeTiled, TILE_ABOVE_PIXELS, type TileOptions } from './vae-tiling.ts';

import type { LoraFeeds } from '../networks/runtime.ts';

/** The networks a pipeline runs (implemented by networks/*.ts). */
export interface PipelineModel {
  encoderSet: Omit<EncoderSet, 'extraEmbeddings' | 'lora' | 'long'>;
  unet: { run(inputs: UNetInputs, lora?: LoraFeeds): Promise<Float32Array> };
  vaeEncoder: { encode(image: Float32Array, batch: number, height: number, width: number): Promise<{ mean: Float32Array; std: Float32Array }> };
  vaeDecoder: { decode(z: Float32Array, batch: number, h: number, w: number): Promise<Float32Array> };
  scalingFactor: number;
  latentChannels: number;
  /** the VAE's downscale factor (`vaeScaleFactor`, SDXL 8): latents are (height / f) × (width / f), sizes must be multiples of it */
  vaeScaleFactor: number;
  /** UNet batch budget in latent pixels when the caller sets none (a one-shot model lowers it; see PipelineHooks) */
  maxBatchLatentPixels?: number;
  /** called once conditioning is built (a one-shot model releases its text encoders here) */
  afterConditioning?: () => Promise<void>;
  /** called once the latents are denoised (a one-shot model releases its UNet and VAE encoder here) */
  afterDenoising?: () => Promise<void>;
}

/** Per-request adapters already turned into network feeds (declared by adapters/, which the pipeline sits above). */
export type { AdapterFeeds } from '../adapters/target.ts';

export interface PipelineHooks {
  onStep?: (step: number, total: number, preview?: () => RgbImage) => void;
  signal?: AbortSignal;
  /** named intermediate tensors, for parity checks */
  trace?: (name: string, data: Float32Array) => void;
  /** 'truncate' reproduces diffusers for prompts over 75 tokens; 'chunk' (default) keeps every token */
  longPrompts?: 'truncate' | 'chunk';
  /**
   * UNet batch budget in latent cells (batch × h × w); larger batches run in slices. Counted in latent cells, not
   * image pixels: the UNet's activation memory follows the latent size whatever the VAE's scale factor.
   * Default: one CFG pair of 128 × 128 latents (a 1024² image with SDXL's factor 8).
   */
  maxBatchLatentPixels?: number;
  /** VAE decode in tiles: 'auto' (default) for images above ~900² px (TILE_ABOVE_PIXELS), where memory matters; 'on'; 'off' */
  vaeTiling?: 'auto' | 'on' | 'off';
  vaeTiles?: TileOptions;
}

/** By default one UNet call holds at most a CFG pair of 128 × 128 latents (SDXL: a 1024² image): bounded activation memory. */
export const DEFAULT_MAX_BATCH_LATENT_PIXELS = 2 * 128 * 128;

export function maxUnetBatch(h: number, w: number, budget = DEFAULT_MAX_BATCH_LATENT_PIXELS): number {
  return Math.max(1, Math.floor(budget / (h * w)));
}

/** Run the UNet over the batch in slices of at most `maxBatch` samples (each sample is independent). */
async function runUnetChunked(
  unet: PipelineModel['unet'],
  lora: LoraFeeds | undefined,
  a: Omit<UNetInputs, 'timestep'> & { timestep: number; maxBatch: number },
): Promise<Float32Array> {
  const per = a.sample.length / a.batch;
  const out = new Float32Array(a.sample.length);
  const ctx = a.encoderHiddenStates.length / a.batch;
  const pooled = a.textEmbeds.length / a.batch;
  for (let b0 = 0; b0 < a.batch; b0 += a.maxBatch) {
    const b1 = Math.min(a.batch, b0 + a.maxBatch);
    const n = b1 - b0;
    const r = await unet.run(
      {
        sample: a.sample.subarray(b0 * per, b1 * per),
        batch: n,
        height: a.height,
        width: a.width,
        timestep: new Float32Array(n).fill(a.timestep),
        encoderHiddenStates: a.encoderHiddenStates.subarray(b0 * ctx, b1 * ctx),
        seqLen: a.seqLen,
        textEmbeds: a.textEmbeds.subarray(b0 * pooled, b1 * pooled),
        timeIds: a.timeIds.subarray(b0 * 6, b1 * 6),
      },
      lora,
    );
    out.set(r, b0 * per);
  }
  return out;
}

export interface PipelineOutput {
  images: RgbImage[];
  /** decoded float images [n, 3, H, W] in [0, 1] before 8-bit rounding */
  imagesFloat: Float32Array;
  timings: Record<string, number>;
}

/**
 * The engine's own size check: the service snaps sizes to multiples of 8 (images/sizes.ts), but the latent size is
 * the output size ÷ the model's VAE scale factor, so a size that is not a multiple of that factor is refused here.
 */
export function checkSize(width: number, height: number, factor: number): void {
  const sides = { width, height };
  const bad = (['width', 'height'] as const).filter((k) => !(Number.isInteger(sides[k]) && sides[k] > 0 && sides[k] % factor === 0));
  if (bad.length === 0) return;
  const what = bad.map((k) => `${k} ${sides[k]}`).join(' and ');
  throw new AtelierError(
    'INVALID_INPUT',
    `${what} must be a positive multiple of ${factor} (this model's VAE scale factor: latents are 1/${factor} of the image size)`,
    { field: bad[0] },
  );
}

export async function runPipeline(model: PipelineModel, req: GenerateRequest, adapters: AdapterFeeds = {}, hooks: PipelineHooks = {}): Promise<PipelineOutput> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => (timings[name] = (performance.now() - since) / 1000);
  const { width, height, numImages: n } = req;
  const f = model.vaeScaleFactor;
  checkSize(width, height, f);
  const h = height / f;
  const w = width / f;
  const c = model.latentChannels;
  const latentSize = n * c * h * w;
  const trace = hooks.trace ?? (() => {});

  // 1. Conditioning
  let t = performance.now();
  const set: EncoderSet = {
    encoders: model.encoderSet.encoders,
    tokenizers: adapters.tokenizers ?? model.encoderSet.tokenizers,
    extraEmbeddings: adapters.extraEmbeddings,
    lora: [adapters.textEncoder1, adapters.textEncoder2],
    long: hooks.longPrompts ?? 'chunk',
  };
  const cond = await buildConditioning(set, {
    prompt: adapters.rewritePrompt ? adapters.rewritePrompt(req.prompt) : req.prompt,
    negativePrompt: req.negativePrompt !== null && adapters.rewritePrompt ? adapters.rewritePrompt(req.negativePrompt) : req.negativePrompt,
    guidanceScale: req.guidanceScale,
    numImages: n,
    height,
    width,
    ...(req.cropsCoordsTopLeft ? { cropTopLeft: req.cropsCoordsTopLeft } : {}),
    signal: hooks.signal,
  });
  trace('unet_cond/encoder_hidden_states', cond.encoderHiddenStates);
  trace('unet_cond/text_embeds', cond.textEmbeds);
  trace('unet_cond/time_ids', cond.timeIds);
  lap('text_encoding', t);
  await model.afterConditioning?.();
  checkAborted(hooks.signal);

  // 2. Schedule and initial latents (random draws in diffusers' order)
  const rng = new TorchGenerator(req.seed);
  const img2img = req.task === 'image-to-image';
  const plan = makePlan({ sampler: req.sampler, steps: req.steps, spacing: req.timestepSpacing, strength: img2img ? req.strength : 1 });
  let latents: Float32Array;
  if (img2img) {
    if (!req.image) throw new AtelierError('INTERNAL', 'image-to-image without an image');
    t = performance.now();
    const pixels = imageToTensor(req.image); // [1, 3, H, W] in [-1, 1]
    trace('vae/encode_input', pixels);
    const { mean, std } = await model.vaeEncoder.encode(pixels, 1, height, width);
    const eps = rng.randn(mean.length);
    const z = new Float32Array(mean.length);
    for (let i = 0; i < z.length; i++) z[i] = (mean[i] + std[i] * eps[i]) * model.scalingFactor;
    trace('add_noise/original_samples', z);
    const x0 = new Float32Array(latentSize); // the image latents repeated for every image of the batch
    for (let i = 0; i < n; i++) x0.set(z, i * z.length);
    lap('vae_encode', t);
    const noise = rng.randn(latentSize);
    latents = addNoise(plan, x0, noise);
    trace('add_noise/noisy_samples', latents);
  } else {
    latents = initialLatents(plan, rng.randn(latentSize));
  }

  // 3. Denoising loop
  t = performance.now();
  let call = 0;
  const denoise = async (modelInput: Float32Array, timestep: number): Promise<Float32Array> => {
    checkAborted(hooks.signal);
    const input = cond.cfg ? concat(modelInput, modelInput) : modelInput; // [B, 4, h, w], B = 2n with CFG
    const raw = await runUnetChunked(model.unet, adapters.unet, {
      sample: input,
      batch: cond.batch,
      height: h,
      width: w,
      timestep,
      encoderHiddenStates: cond.encoderHiddenStates,
      seqLen: cond.seqLen,
      textEmbeds: cond.textEmbeds,
      timeIds: cond.timeIds,
      maxBatch: maxUnetBatch(h, w, hooks.maxBatchLatentPixels ?? model.maxBatchLatentPixels),
    });
    const tag = `step${String(call++).padStart(2, '0')}`;
    trace(`${tag}/noise_pred_raw`, raw);
    if (!cond.cfg) return raw;
    const half = raw.length / 2;
    const uncond = raw.subarray(0, half);
    const text = raw.subarray(half);
    let guided = applyCfg(uncond, text, req.guidanceScale);
    if (req.guidanceRescale > 0) guided = rescaleNoiseCfg(guided, text, req.guidanceRescale, n);
    trace(`${tag}/noise_pred_guided`, guided);
    return guided;
  };
  latents = await sample(plan, latents, denoise, {
    rng,
    signal: hooks.signal,
    onStep: (done, total, current) => hooks.onStep?.(done, total, () => latentPreview(current, n, c, h, w)),
  });
  lap('denoising', t);
  await model.afterDenoising?.();
  checkAborted(hooks.signal);

  // 4. Decode, one image at a time to bound memory
  t = performance.now();
  const per = c * h * w;
  const imagesFloat = new Float32Array(n * 3 * height * width);
  for (let i = 0; i < n; i++) {
    const z = new Float32Array(per);
    for (let j = 0; j < per; j++) z[j] = latents[i * per + j] / model.scalingFactor;
    if (i === 0) trace('vae/decode_input', z);
    const tiled = (hooks.vaeTiling ?? 'auto') === 'on' || ((hooks.vaeTiling ?? 'auto') === 'auto' && height * width > TILE_ABOVE_PIXELS);
    const decoded = tiled
      ? await decodeTiled(z, c, h, w, f, (tile, th, tw) => model.vaeDecoder.decode(tile, 1, th, tw), hooks.vaeTiles)
      : await model.vaeDecoder.decode(z, 1, h, w);
    if (i === 0) trace('vae/decode_output', decoded);
    for (let j = 0; j < decoded.length; j++) {
      const v = decoded[j] / 2 + 0.5;
      imagesFloat[i * decoded.length + j] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  lap('vae_decode', t);
  timings.total = (performance.now() - t0) / 1000;
  return { images: tensorToImages(imagesFloat, n, height, width), imagesFloat, timings };
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
