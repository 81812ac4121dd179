/**
 * A sampling plan: everything a sampler needs to know about the schedule, computed up front as plain data
 * (no scheduler object, no hidden step index). Mirrors what diffusers 0.29.2's scheduler holds after
 * `set_timesteps(N)` + the img2img pipeline's `get_timesteps(N, strength)` / `set_begin_index`.
 */
import type { SamplerName, TimestepSpacing } from '../contract/types.ts';
import { AtelierError } from '../contract/errors.ts';
import { TIMESTEP_SPACINGS } from '../contract/tables.ts';
import {
  alphasCumprod as cumprod,
  betasScaledLinear,
  dpmTimesteps,
  karrasSigmas,
  lcmTimesteps,
  logSigmas,
  sigmaToTimestep,
  sigmasAll,
  sigmasForTimesteps,
  strengthToStart,
  timesteps as spacedTimesteps,
  roundHalfEven,
  vpScales,
} from './schedules.ts';

const fr = Math.fround;

export interface ScheduleConfig {
  betaStart: number;
  betaEnd: number;
  trainSteps: number;
  stepsOffset: number;
}

/** SDXL base: scaled_linear 0.00085 – 0.012, 1000 training steps, steps_offset 1 */
export const SDXL_SCHEDULE: ScheduleConfig = Object.freeze({
  betaStart: 0.00085,
  betaEnd: 0.012,
  trainSteps: 1000,
  stepsOffset: 1,
});

export interface PlanRequest {
  sampler: SamplerName;
  /** inference steps N of the full schedule */
  steps: number;
  /** default 'leading' (SDXL base). Ignored by lcm and dpmpp_2m_karras (their schedules fix the timesteps). */
  spacing?: TimestepSpacing;
  /** img2img strength in (0, 1]; 1 (default) = text-to-image, the whole schedule */
  strength?: number;
  schedule?: ScheduleConfig;
}

export interface SamplePlan {
  readonly sampler: SamplerName;
  /** 'sigma': latents live at scale √(σ²+1) (Euler family, σ-scaled model input); 'vp': latents at unit scale */
  readonly space: 'sigma' | 'vp';
  /** N, the full schedule's step count */
  readonly steps: number;
  readonly spacing: TimestepSpacing;
  /** index of the first step that runs (img2img), 0 for text-to-image */
  readonly tStart: number;
  /** timestep of each step that runs (length runSteps) */
  readonly timesteps: readonly number[];
  /**
   * σ of each step that runs, then the σ it ends at (length runSteps + 1, last = 0), float32.
   * VP samplers: DPM's solver σ; DDIM/LCM the equivalent √((1−ᾱ_t)/ᾱ_t) (informative only).
   */
  readonly sigmas: Float32Array;
  /** the UNet timestep of every model call, in order (diffusers' `scheduler.timesteps[tStart·order:]`) */
  readonly callTimesteps: readonly number[];
  /** number of denoiser calls: runSteps, or 2·runSteps − 1 for heun and dpmpp_sde_karras */
  readonly modelCalls: number;
  /** txt2img: initial latents = randn · initNoiseSigma */
  readonly initNoiseSigma: number;
  /** ᾱ of the training timesteps, float32 */
  readonly alphasCumprod: Float32Array;
  /** dpmpp_sde_karras only: UNet timestep of the second (midpoint) call of each non-final step */
  readonly midTimesteps?: readonly number[];
}

const SIGMA_SAMPLERS: ReadonlySet<SamplerName> = new Set(['euler', 'euler_ancestral', 'heun', 'dpmpp_sde_karras']);

export function makePlan(req: PlanRequest): SamplePlan {
  const { sampler, steps, spacing = 'leading', strength = 1, schedule = SDXL_SCHEDULE } = req;
  if (!TIMESTEP_SPACINGS.includes(spacing)) {
    throw new AtelierError('INTERNAL', `unknown timestep spacing ${JSON.stringify(spacing)}`); // the contract's table lists them
  }
  const ac = cumprod(betasScaledLinear(schedule.betaStart, schedule.betaEnd, schedule.trainSteps));
  const sAll = sigmasAll(ac);
  const opts = { stepsOffset: schedule.stepsOffset, trainSteps: schedule.trainSteps };
  const { tStart } = strengthToStart(steps, strength);

  let fullT: number[]; // timesteps of the full schedule
  let fullS: number[]; // σ of the full schedule, without the final 0 (float64 before the cast, as diffusers)
  let mid: number[] | undefined;
  switch (sampler) {
    case 'euler':
    case 'euler_ancestral':
    case 'heun': {
      fullT = spacedTimesteps(spacing, steps, opts).map(fr); // float32 timesteps
      fullS = sigmasForTimesteps(fullT, sAll);
      break;
    }
    case 'dpmpp_sde_karras': {
      const logS = logSigmas(sAll);
      const spaced = sigmasForTimesteps(spacedTimesteps(spacing, steps, opts), sAll);
      fullS = karrasSigmas(steps, spaced[spaced.length - 1], spaced[0]);
      fullT = fullS.map((s) => sigmaToTimestep(s, logS));
      // midpoint of each interval in t = −ln σ, as diffusers' `_second_order_timesteps`
      mid = fullS.slice(0, -1).map((s, k) => {
        const t0 = -Math.log(s);
        const t1 = -Math.log(fullS[k + 1]);
        return sigmaToTimestep(Math.exp(-(t0 + (t1 - t0) * 0.5)), logS);
      });
      break;
    }
    case 'dpmpp_2m':
      fullT = dpmTimesteps(spacing, steps, opts);
      fullS = sigmasForTimesteps(fullT, sAll);
      break;
    case 'dpmpp_2m_karras': {
      const logS = logSigmas(sAll);
      fullS = karrasSigmas(steps, sAll[0], sAll[sAll.length - 1]);
      fullT = fullS.map((s) => roundHalfEven(sigmaToTimestep(s, logS)));
      break;
    }
    case 'ddim':
      fullT = spacedTimesteps(spacing, steps, opts).map(roundHalfEven);
      fullS = fullT.map((t) => sAll[t]);
      break;
    case 'lcm':
      fullT = lcmTimesteps(steps, { trainSteps: schedule.trainSteps });
      fullS = fullT.map((t) => sAll[t]);
      break;
    default:
      throw new AtelierError('INTERNAL', `unknown sampler ${JSON.stringify(sampler)}`); // the contract's table lists them
  }

  const space = SIGMA_SAMPLERS.has(sampler) ? 'sigma' : 'vp';
  const sigmasF32 = Float32Array.from([...fullS, 0]);
  const timesteps = fullT.slice(tStart);
  const sigmas = sigmasF32.slice(tStart);
  const twoCalls = sampler === 'heun' || sampler === 'dpmpp_sde_karras';
  const midRun = mid?.slice(tStart);
  return {
    sampler,
    space,
    steps,
    spacing,
    tStart,
    timesteps,
    sigmas,
    callTimesteps: twoCalls ? interleave(timesteps, midRun) : timesteps,
    modelCalls: twoCalls ? 2 * timesteps.length - 1 : timesteps.length,
    initNoiseSigma: space === 'sigma' ? initNoiseSigma(sigmasF32, spacing) : 1,
    alphasCumprod: ac,
    ...(midRun ? { midTimesteps: midRun } : {}),
  };
}

/**
 * Call order of the two-call samplers: t0, then for every further step k a second-stage call for the previous
 * interval (heun: at t_k; sde: at the interval's midpoint) followed by the first-stage call at t_k.
 */
function interleave(ts: readonly number[], mid: readonly number[] | undefined): number[] {
  const out = [ts[0]];
  for (let k = 1; k < ts.length; k++) out.push(mid ? mid[k - 1] : ts[k], ts[k]);
  return out;
}

/** Euler family: √(σmax² + 1) for leading spacing, σmax for linspace / trailing (float32 like diffusers) */
function initNoiseSigma(sigmas: Float32Array, spacing: TimestepSpacing): number {
  let max = 0;
  for (const s of sigmas) max = Math.max(max, s);
  return spacing === 'leading' ? fr(Math.sqrt(fr(fr(max * max) + 1))) : max;
}

/** txt2img initial latents: randn · initNoiseSigma (float32, as diffusers' `prepare_latents`) */
export function initialLatents(plan: SamplePlan, noise: Float32Array): Float32Array {
  const c = plan.initNoiseSigma;
  return noise.map((v) => v * c);
}

/**
 * Noise clean latents x0 to the level of run step `stepIndex` (default 0: where an img2img run starts), as each
 * scheduler's `add_noise`: σ-space x0 + σ·noise; DPM α·x0 + σα·noise with α = 1/√(σ²+1);
 * DDIM / LCM √ᾱ_t·x0 + √(1−ᾱ_t)·noise. The pipeline draws `noise` (randn of the latent size) from its generator.
 */
export function addNoise(plan: SamplePlan, x0: Float32Array, noise: Float32Array, stepIndex = 0): Float32Array {
  if (noise.length !== x0.length) {
    throw new AtelierError('INTERNAL', `noise has ${noise.length} values for latents of ${x0.length}`);
  }
  let a: number; // coefficient of x0
  let b: number; // coefficient of the noise
  if (plan.space === 'sigma') {
    a = 1;
    b = plan.sigmas[stepIndex];
  } else if (plan.sampler === 'dpmpp_2m' || plan.sampler === 'dpmpp_2m_karras') {
    const { alpha, s } = vpScales(plan.sigmas[stepIndex]);
    a = alpha;
    b = s;
  } else {
    const abar = plan.alphasCumprod[plan.timesteps[stepIndex]];
    a = fr(Math.sqrt(abar));
    b = fr(Math.sqrt(fr(1 - abar)));
  }
  const out = new Float32Array(x0.length);
  for (let i = 0; i < x0.length; i++) out[i] = fr(a * x0[i]) + fr(b * noise[i]);
  return out;
}
