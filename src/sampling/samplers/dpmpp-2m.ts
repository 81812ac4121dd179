/**
 * DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095), as diffusers' `DPMSolverMultistepScheduler`
 * (algorithm_type "dpmsolver++", solver_order 2, midpoint, lower_order_final, final σ 0) on VP-scaled latents.
 * With α = 1/√(σ²+1), s = σα, λ = ln α − ln s, h = λ_next − λ and x0 = (x − s·ε)/α:
 * order 1 (first step of the run, last step): x' = (s_next/s)·x − α_next(e^(−h) − 1)·x0;
 * order 2: r = (λ − λ_prev)/h, D1 = (x0 − x0_prev)/r, x' = (s_next/s)·x − α_next(e^(−h) − 1)·(x0 + D1/2).
 * The karras variant is the same solver on a Karras σ schedule (see plan.ts).
 */
import type { SamplePlan } from '../plan.ts';
import { vpScales } from '../schedules.ts';
import { callDenoiser, type Denoiser, type SampleOptions } from './common.ts';

const fr = Math.fround;

export async function sampleDpmpp2m(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  let x = latents;
  const n = plan.timesteps.length;
  let prevX0: Float32Array | null = null;
  for (let k = 0; k < n; k++) {
    const sigma = plan.sigmas[k];
    const eps = await callDenoiser(denoise, x, x, plan.timesteps[k], { stepIndex: k, sigma }, signal);
    const cur = vpScales(sigma);
    const next = vpScales(plan.sigmas[k + 1]);
    const x0 = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) x0[i] = fr(x[i] - fr(cur.s * eps[i])) / cur.alpha;
    const h = fr(next.lambda - cur.lambda);
    const ratio = fr(next.s / cur.s);
    const coef = fr(next.alpha * fr(fr(Math.exp(fr(-h))) - 1));
    const out = new Float32Array(x.length);
    if (prevX0 === null || k === n - 1) {
      for (let i = 0; i < x.length; i++) out[i] = fr(ratio * x[i]) - fr(coef * x0[i]);
    } else {
      const prev = vpScales(plan.sigmas[k - 1]);
      const r0 = fr(fr(cur.lambda - prev.lambda) / h);
      const invR0 = fr(1 / r0);
      const halfCoef = fr(0.5 * coef);
      for (let i = 0; i < x.length; i++) {
        const d1 = fr(invR0 * fr(x0[i] - prevX0[i]));
        out[i] = fr(fr(ratio * x[i]) - fr(coef * x0[i])) - fr(halfCoef * d1);
      }
    }
    prevX0 = x0;
    x = out;
    onStep?.(k + 1, n, x);
  }
  return x;
}
