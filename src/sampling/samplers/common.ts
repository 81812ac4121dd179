/**
 * What every sampler shares: the denoiser contract, the options, and float32 helpers that follow diffusers'
 * order of operations on torch float32 tensors (each binary op rounded to float32).
 */
import { AtelierError } from '../../contract/errors.ts';
import type { NoiseSource } from '../rng.ts';

const fr = Math.fround;

export interface DenoiseInfo {
  /** index of this model call, 0-based (heun / dpmpp_sde_karras make two calls per step) */
  stepIndex: number;
  /** noise level of the model input: σ for σ-space samplers, the equivalent σ of ᾱ_t for VP ones */
  sigma: number;
}

/**
 * Returns the GUIDED noise prediction ε for `modelInput` (shape [B,4,h,w], already scaled by the sampler) at
 * `timestep`; the pipeline runs the UNet with classifier-free guidance and guidance_rescale.
 */
export type Denoiser = (modelInput: Float32Array, timestep: number, info: DenoiseInfo) => Promise<Float32Array>;

export interface SampleOptions {
  /** the generator the pipeline drew its initial noise from; samplers draw per-step noise of the latent size */
  rng: NoiseSource;
  /**
   * After every model call: calls done (1-based), total = plan.modelCalls, and the latents after that call
   * (heun / dpmpp_sde_karras first stage: the predictor / midpoint sample). Do not modify them.
   */
  onStep?: (done: number, total: number, latents: Float32Array) => void;
  /** checked before every model call; aborting throws AtelierError('CANCELLED') */
  signal?: AbortSignal;
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AtelierError('CANCELLED', 'generation cancelled', { cause: signal.reason });
}

/** diffusers `scale_model_input` of the Euler family: x / √(σ² + 1), float32 */
export function scaleForSigma(x: Float32Array, sigma: number): Float32Array {
  const c = fr(Math.sqrt(fr(fr(sigma * sigma) + 1)));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] / c;
  return out;
}

/** x0 = x − σ·ε (float32) */
export function predictX0(x: Float32Array, eps: Float32Array, sigma: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - fr(sigma * eps[i]);
  return out;
}

/** one Euler step in diffusers' form: d = (x − x0)/σ, x' = x + d·(σ_to − σ) (float32) */
export function eulerStep(x: Float32Array, x0: Float32Array, sigma: number, sigmaTo: number): Float32Array {
  const dt = fr(sigmaTo - sigma);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + fr(fr(fr(x[i] - x0[i]) / sigma) * dt);
  return out;
}

export function assertLength(eps: Float32Array, x: Float32Array): void {
  if (eps.length !== x.length) {
    throw new AtelierError('INTERNAL', `denoiser returned ${eps.length} values for latents of ${x.length}`);
  }
}

/** the guided prediction, checked */
export async function callDenoiser(
  denoise: Denoiser,
  input: Float32Array,
  x: Float32Array,
  timestep: number,
  info: DenoiseInfo,
  signal: AbortSignal | undefined,
): Promise<Float32Array> {
  throwIfAborted(signal);
  const eps = await denoise(input, timestep, info);
  assertLength(eps, x);
  return eps;
}
