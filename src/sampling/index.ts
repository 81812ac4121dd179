/**
 * Sampling: seeded PyTorch-compatible noise, schedules, samplers. A sampler is a pure async function of
 * (plan, latents, denoiser, { rng, onStep, signal }); `sample` picks it from the plan.
 */
import type { SamplerName } from '../contract/types.ts';
import type { SamplePlan } from './plan.ts';
import type { Denoiser, SampleOptions } from './samplers/common.ts';
import { sampleDdim } from './samplers/ddim.ts';
import { sampleDpmpp2m } from './samplers/dpmpp-2m.ts';
import { sampleDpmppSde } from './samplers/dpmpp-sde.ts';
import { sampleEulerAncestral } from './samplers/euler-ancestral.ts';
import { sampleEuler } from './samplers/euler.ts';
import { sampleHeun } from './samplers/heun.ts';
import { sampleLcm } from './samplers/lcm.ts';

export type SamplerFn = (
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  opts: SampleOptions,
) => Promise<Float32Array>;

/** the sampler of each name (dpmpp_2m_karras = the dpmpp_2m solver; the plan holds the Karras σ's) */
export const SAMPLERS: Readonly<Record<SamplerName, SamplerFn>> = Object.freeze({
  euler: sampleEuler,
  euler_ancestral: sampleEulerAncestral,
  heun: sampleHeun,
  dpmpp_2m: sampleDpmpp2m,
  dpmpp_2m_karras: sampleDpmpp2m,
  dpmpp_sde_karras: sampleDpmppSde,
  ddim: sampleDdim,
  lcm: sampleLcm,
});

/** Run the plan's sampler from `latents` (not modified) and return the final latents. */
export function sample(
  plan: SamplePlan,
  latents: Float32Array,
  denoise: Denoiser,
  opts: SampleOptions,
): Promise<Float32Array> {
  return SAMPLERS[plan.sampler](plan, latents, denoise, opts);
}

export { TorchGenerator, type NoiseSource, type TorchGeneratorState } from './rng.ts';
export {
  makePlan,
  addNoise,
  initialLatents,
  SDXL_SCHEDULE,
  type SamplePlan,
  type PlanRequest,
  type ScheduleConfig,
} from './plan.ts';
export { strengthToStart, karrasSigmas, type StrengthStart } from './schedules.ts';
export { applyCfg, applyCfgToBatch, rescaleNoiseCfg } from './guidance.ts';
export type { Denoiser, DenoiseInfo, SampleOptions } from './samplers/common.ts';
