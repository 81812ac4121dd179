/**
 * Heun's 2nd-order method (Karras et al. 2022, arXiv:2206.00364, algorithm 1 with s_churn = 0), as diffusers'
 * `HeunDiscreteScheduler`: per step σ → σn a first call at σ (Euler predictor x̃ = x + d1·dt), a second call at
 * (x̃, σn), x' = x + (d1 + d2)/2·dt; the last step (σn = 0) is the Euler predictor alone. 2N − 1 model calls.
 */
import type { SamplePlan } from '../plan.ts';
import { callDenoiser, eulerStep, predictX0, scaleForSigma, type Denoiser, type SampleOptions } from './common.ts';

const fr = Math.fround;

export async function sampleHeun(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  let x = latents;
  const n = plan.timesteps.length;
  const total = plan.modelCalls;
  let call = 0;
  for (let k = 0; k < n; k++) {
    const sigma = plan.sigmas[k];
    const sigmaNext = plan.sigmas[k + 1];
    // stage 1 at σ
    const eps1 = await callDenoiser(denoise, scaleForSigma(x, sigma), x, plan.timesteps[k], { stepIndex: call, sigma }, signal);
    const x0 = predictX0(x, eps1, sigma);
    const xPred = eulerStep(x, x0, sigma, sigmaNext);
    onStep?.(++call, total, xPred);
    if (k === n - 1) return xPred; // σn = 0: no second stage
    // stage 2 at σn on the predictor
    const eps2 = await callDenoiser(
      denoise,
      scaleForSigma(xPred, sigmaNext),
      xPred,
      plan.timesteps[k + 1],
      { stepIndex: call, sigma: sigmaNext },
      signal,
    );
    const x02 = predictX0(xPred, eps2, sigmaNext);
    const dt = fr(sigmaNext - sigma);
    const next = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const d1 = fr(fr(x[i] - x0[i]) / sigma);
      const d2 = fr(fr(xPred[i] - x02[i]) / sigmaNext);
      next[i] = x[i] + fr(fr(fr(d1 + d2) / 2) * dt);
    }
    x = next;
    onStep?.(++call, total, x);
  }
  return x;
}
