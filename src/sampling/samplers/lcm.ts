/**
 * Latent Consistency Model multistep sampling (Luo et al. 2023, arXiv:2310.04378, algorithm 1), as diffusers'
 * `LCMScheduler.step`: x0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t, boundary scalings with σ_data = 0.5 and timestep scaling 10
 * (c_skip = 0.25/((10t)² + 0.25), c_out = 10t/√((10t)² + 0.25)), denoised = c_out·x0 + c_skip·x; then
 * re-noise to the next timestep, x' = √ᾱ_next·denoised + √(1−ᾱ_next)·noise, with one randn per step but the last,
 * whose output is `denoised` itself.
 */
import type { SamplePlan } from '../plan.ts';
import { callDenoiser, type Denoiser, type SampleOptions } from './common.ts';

const fr = Math.fround;

export async function sampleLcm(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { rng, onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  let x = latents;
  const ac = plan.alphasCumprod;
  const n = plan.timesteps.length;
  for (let k = 0; k < n; k++) {
    const t = plan.timesteps[k];
    const eps = await callDenoiser(denoise, x, x, t, { stepIndex: k, sigma: plan.sigmas[k] }, signal);
    const aT = ac[t];
    const sqrtBeta = fr(Math.sqrt(fr(1 - aT)));
    const sqrtA = fr(Math.sqrt(aT));
    const scaled = fr(t * 10);
    const denom = fr(fr(scaled * scaled) + 0.25);
    const cSkip = fr(0.25 / denom);
    const cOut = fr(scaled / fr(Math.sqrt(denom)));
    const denoised = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const x0 = fr(fr(x[i] - fr(sqrtBeta * eps[i])) / sqrtA);
      denoised[i] = fr(cOut * x0) + fr(cSkip * x[i]);
    }
    if (k === n - 1) {
      x = denoised;
    } else {
      const aNext = ac[plan.timesteps[k + 1]];
      const sqrtANext = fr(Math.sqrt(aNext));
      const sqrtBetaNext = fr(Math.sqrt(fr(1 - aNext)));
      const noise = rng.randn(x.length);
      x = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) x[i] = fr(sqrtANext * denoised[i]) + fr(sqrtBetaNext * noise[i]);
    }
    onStep?.(k + 1, n, x);
  }
  return x;
}
