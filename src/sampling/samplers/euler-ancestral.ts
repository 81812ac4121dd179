/**
 * Euler ancestral (k-diffusion `sample_euler_ancestral`, eta = 1), as diffusers'
 * `EulerAncestralDiscreteScheduler.step`: σ_up = √(σn²(σ² − σn²)/σ²), σ_down = √(σn² − σ_up²),
 * x' = x + d·(σ_down − σ) + noise·σ_up, one randn of the latent size per step (σ_up = 0 on the last).
 */
import type { SamplePlan } from '../plan.ts';
import { callDenoiser, eulerStep, predictX0, scaleForSigma, type Denoiser, type SampleOptions } from './common.ts';

const fr = Math.fround;

export async function sampleEulerAncestral(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { rng, onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  let x = latents;
  const n = plan.timesteps.length;
  for (let k = 0; k < n; k++) {
    const sigma = plan.sigmas[k];
    const sigmaNext = plan.sigmas[k + 1];
    const eps = await callDenoiser(denoise, scaleForSigma(x, sigma), x, plan.timesteps[k], { stepIndex: k, sigma }, signal);
    const { up, down } = ancestralSigmas(sigma, sigmaNext);
    x = eulerStep(x, predictX0(x, eps, sigma), sigma, down);
    const noise = rng.randn(x.length);
    for (let i = 0; i < x.length; i++) x[i] = x[i] + fr(noise[i] * up);
    onStep?.(k + 1, n, x);
  }
  return x;
}

/** the ancestral split of a step σ_from → σ_to, float32 in diffusers' operation order */
export function ancestralSigmas(sigmaFrom: number, sigmaTo: number): { up: number; down: number } {
  const from2 = fr(sigmaFrom * sigmaFrom);
  const to2 = fr(sigmaTo * sigmaTo);
  const up = fr(Math.sqrt(fr(fr(to2 * fr(from2 - to2)) / from2)));
  const down = fr(Math.sqrt(fr(to2 - fr(up * up))));
  return { up, down };
}
