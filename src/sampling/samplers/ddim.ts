/**
 * DDIM with η = 0 (Song et al. 2020, arXiv:2010.02502, eq. 12), as diffusers' `DDIMScheduler.step` with SDXL's
 * clip_sample = False, set_alpha_to_one = False: t_prev = t − train//N (ᾱ_prev = ᾱ_0 below 0),
 * x0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t, x' = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε. Deterministic: no noise is drawn.
 */
import type { SamplePlan } from '../plan.ts';
import { callDenoiser, type Denoiser, type SampleOptions } from './common.ts';

const fr = Math.fround;

export async function sampleDdim(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  let x = latents;
  const ac = plan.alphasCumprod;
  const n = plan.timesteps.length;
  const stride = Math.floor(ac.length / plan.steps);
  for (let k = 0; k < n; k++) {
    const t = plan.timesteps[k];
    const eps = await callDenoiser(denoise, x, x, t, { stepIndex: k, sigma: plan.sigmas[k] }, signal);
    const prevT = t - stride;
    const aT = ac[t];
    const aPrev = prevT >= 0 ? ac[prevT] : ac[0];
    const sqrtBeta = fr(Math.sqrt(fr(1 - aT)));
    const sqrtA = fr(Math.sqrt(aT));
    const sqrtAPrev = fr(Math.sqrt(aPrev));
    const dirCoef = fr(Math.sqrt(fr(1 - aPrev)));
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const x0 = fr(fr(x[i] - fr(sqrtBeta * eps[i])) / sqrtA);
      out[i] = fr(sqrtAPrev * x0) + fr(dirCoef * eps[i]);
    }
    x = out;
    onStep?.(k + 1, n, x);
  }
  return x;
}
