/**
 * Euler (Karras et al. 2022, arXiv:2206.00364, algorithm 2 with s_churn = 0), as diffusers'
 * `EulerDiscreteScheduler.step`: x0 = x − σε, d = (x − x0)/σ, x' = x + d·(σ_next − σ).
 * Like diffusers it draws (and ignores) one randn of the latent size per step, keeping the generator in step.
 */
import type { SamplePlan } from '../plan.ts';
import { callDenoiser, eulerStep, predictX0, scaleForSigma, type Denoiser, type SampleOptions } from './common.ts';

export async function sampleEuler(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { rng, onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  let x = latents;
  const n = plan.timesteps.length;
  for (let k = 0; k < n; k++) {
    const sigma = plan.sigmas[k];
    const eps = await callDenoiser(denoise, scaleForSigma(x, sigma), x, plan.timesteps[k], { stepIndex: k, sigma }, signal);
    rng.randn(x.length); // s_churn = 0: drawn but unused, as diffusers does
    x = eulerStep(x, predictX0(x, eps, sigma), sigma, plan.sigmas[k + 1]);
    onStep?.(k + 1, n, x);
  }
  return x;
}
