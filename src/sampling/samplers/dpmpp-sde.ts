/**
 * DPM-Solver++ SDE (k-diffusion `sample_dpmpp_sde`, r = 1/2, η = 1; Lu et al. 2022, arXiv:2211.01095), laid out like
 * diffusers' `DPMSolverSDEScheduler` on Karras σ's: in t = −ln σ, each step t → t_next makes a first call at σ,
 * an ancestral DPM-Solver++(1) move to the midpoint t_mid (x_mid), a second call at (x_mid, σ(t_mid)), then the
 * ancestral move from the step's start to t_next driven by the midpoint's x0. Every ancestral move to a
 * σ_to > 0 adds noise·σ_up with σ_up = min(σ_to, √(σ_to²(σ_from² − σ_to²)/σ_from²)). The last step (σ_next = 0)
 * is a single Euler call. 2N − 1 model calls.
 *
 * Noise: diffusers / k-diffusion query a torchsde Brownian tree in σ (seeded outside the pipeline's generator,
 * so not reproducible from the seed there either): per step the increments W(σ_mid) − W(σ) and W(σ_next) − W(σ),
 * each normalised to unit variance, whose correlation is ρ = √((σ − σ_mid)/(σ − σ_next)); steps use disjoint
 * intervals, so they are independent. We draw that same joint distribution from `rng`: n1 = randn,
 * n2 = ρ·n1 + √(1 − ρ²)·randn (two latent-sized draws per non-final step, 2·(N − 1) in all). Same sampler, same
 * noise statistics, different samples than diffusers for a seed.
 */
import { AtelierError } from '../../contract/errors.ts';
import type { SamplePlan } from '../plan.ts';
import { callDenoiser, eulerStep, predictX0, scaleForSigma, type Denoiser, type SampleOptions } from './common.ts';

const fr = Math.fround;
const tOf = (sigma: number): number => fr(-fr(Math.log(sigma)));
const sigmaOf = (t: number): number => fr(Math.exp(-t));

export async function sampleDpmppSde(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  { rng, onStep, signal }: SampleOptions,
): Promise<Float32Array> {
  const mids = plan.midTimesteps;
  if (!mids) throw new AtelierError('INTERNAL', `a ${plan.sampler} plan has no midpoint timesteps`);
  let x = latents;
  const n = plan.timesteps.length;
  const total = plan.modelCalls;
  let call = 0;
  for (let k = 0; k < n; k++) {
    const sigma = plan.sigmas[k];
    const sigmaNext = plan.sigmas[k + 1];
    const eps1 = await callDenoiser(denoise, scaleForSigma(x, sigma), x, plan.timesteps[k], { stepIndex: call, sigma }, signal);
    const x0 = predictX0(x, eps1, sigma);
    if (sigmaNext === 0) {
      x = eulerStep(x, x0, sigma, 0);
      onStep?.(++call, total, x);
      continue;
    }
    const t = tOf(sigma);
    const tNext = tOf(sigmaNext);
    const tMid = fr(t + fr(fr(tNext - t) * 0.5));
    const n1 = rng.randn(x.length);
    const xMid = ancestralMove(x, x0, t, tMid, n1);
    onStep?.(++call, total, xMid);
    const sigmaMid = sigmaOf(tMid);
    const eps2 = await callDenoiser(
      denoise,
      scaleForSigma(xMid, sigmaMid),
      xMid,
      mids[k],
      { stepIndex: call, sigma: sigmaMid },
      signal,
    );
    const x0Mid = predictX0(xMid, eps2, sigmaMid);
    x = ancestralMove(x, x0Mid, t, tNext, brownianSecond(n1, rng.randn(x.length), sigma, sigmaMid, sigmaNext));
    onStep?.(++call, total, x);
  }
  return x;
}

/** x' = (σ_down/σ_from)·x − expm1(t − t_down)·x0 + noise·σ_up, for a move from t to tTo (float32 scalars) */
function ancestralMove(x: Float32Array, x0: Float32Array, t: number, tTo: number, noise: Float32Array): Float32Array {
  const from = sigmaOf(t);
  const to = sigmaOf(tTo);
  const from2 = fr(from * from);
  const to2 = fr(to * to);
  const up = Math.min(to, fr(Math.sqrt(fr(fr(to2 * fr(from2 - to2)) / from2))));
  const down = fr(Math.sqrt(fr(to2 - fr(up * up))));
  const tDown = tOf(down);
  const ratio = fr(sigmaOf(tDown) / from);
  const c = fr(Math.expm1(fr(t - tDown)));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = fr(fr(ratio * x[i]) - fr(c * x0[i])) + fr(noise[i] * up);
  return out;
}

/** the second normalised Brownian increment given the first: ρ·n1 + √(1 − ρ²)·z, ρ² = (σ − σ_mid)/(σ − σ_next) */
function brownianSecond(n1: Float32Array, z: Float32Array, sigma: number, sigmaMid: number, sigmaNext: number): Float32Array {
  const rho2 = (sigma - sigmaMid) / (sigma - sigmaNext);
  const a = Math.sqrt(rho2);
  const b = Math.sqrt(1 - rho2);
  const out = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) out[i] = a * n1[i] + b * z[i];
  return out;
}
