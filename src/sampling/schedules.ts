/**
 * Noise schedules and timestep spacings, as pure functions, reproducing diffusers 0.29.2 on PyTorch 1.13 CPU
 * (float32 where diffusers holds torch float32 tensors, float64 where it works in numpy).
 * Sources: diffusers `schedulers/scheduling_euler_discrete.py`, `scheduling_dpmsolver_multistep.py`,
 * `scheduling_ddim.py`, `scheduling_lcm.py`, `scheduling_dpmsolver_sde.py`; Karras et al. 2022 (arXiv:2206.00364) eq. 5;
 * "Common Diffusion Noise Schedules and Sample Steps are Flawed" (arXiv:2305.08891) table 2 for the spacings.
 */
import { AtelierError } from '../contract/errors.ts';
import { LCM_ORIGINAL_STEPS, type TimestepSpacing } from '../contract/tables.ts';
import { fma32 } from './f32-math.ts';

const fr = Math.fround;

type Spacing = TimestepSpacing;

export interface TimestepOptions {
  /** added to "leading" timesteps (SDXL: 1) */
  stepsOffset?: number;
  /** training timesteps (SDXL: 1000) */
  trainSteps?: number;
}

/**
 * β_t = linspace(√start, √end, n)², in float32 exactly as `torch.linspace(..., dtype=float32) ** 2` on a CPU with
 * AVX2: 8-lane chunks, each chunk's base taken from the nearer end with one fused multiply-add.
 */
export function betasScaledLinear(start = 0.00085, end = 0.012, n = 1000): Float32Array {
  const s = fr(Math.sqrt(start));
  const e = fr(Math.sqrt(end));
  const step = fr(fr(e - s) / (n - 1));
  const half = Math.floor(n / 2);
  const lin = new Float32Array(n);
  const at = (idx: number): number => (idx < half ? fma32(step, idx, s) : fma32(-step, n - idx - 1, e));
  const vecEnd = Math.floor(n / 16) * 16; // PyTorch's vectorised loop runs two 8-lane vectors at a time
  for (let idx = 0; idx < vecEnd; idx += 8) {
    const base = at(idx);
    for (let i = 0; i < 8; i++) lin[idx + i] = fma32(i, step, base);
  }
  for (let idx = vecEnd; idx < n; idx++) lin[idx] = at(idx);
  return lin.map((b) => fr(b * b));
}

/** ᾱ_t = Π(1 − β) (`torch.cumprod` on CPU accumulates float32 input in double, rounding each output) */
export function alphasCumprod(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= fr(1 - betas[i]);
    out[i] = acc;
  }
  return out;
}

/** σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, float32 */
export function sigmasAll(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => fr(Math.sqrt(fr(fr(1 - a) / a))));
}

/** ln σ_t (numpy float32 log), used to map a σ back to a fractional timestep */
export function logSigmas(sigmas: Float32Array): Float32Array {
  return sigmas.map((s) => fr(Math.log(s)));
}

/** numpy's round (half to even) */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.linspace(start, stop, num)` (endpoint included, float64, computed as numpy does) */
export function npLinspace(start: number, stop: number, num: number, endpoint = true): number[] {
  const div = endpoint ? num - 1 : num;
  const delta = stop - start;
  const out: number[] = [];
  if (div <= 0) {
    for (let i = 0; i < num; i++) out.push(start); // numpy: y = arange(num) * delta (+ start) with num ≤ 1
    return out;
  }
  const step = delta / div;
  for (let i = 0; i < num; i++) out.push(i * step + start);
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/** `np.arange(start, 0, -step)` truncated to `count` values (numpy may return one extra value ≈ 0; see timesteps) */
function descendingArange(start: number, step: number, count: number): number[] {
  const out = [start];
  if (count > 1) out.push(start - step);
  const delta = start - step - start; // numpy fills value i as start + i·(second − first)
  for (let i = 2; i < count; i++) out.push(start + i * delta);
  return out.slice(0, count);
}

/**
 * Timesteps of the Euler-family, DDIM and DPM-SDE schedulers (diffusers `set_timesteps`), descending.
 * leading: (train//N)·(N−1−k) + offset; trailing: round(arange(train, 0, −train/N)) − 1;
 * linspace: linspace(0, train−1, N) reversed (fractional; callers round it the way their scheduler does).
 * Deviation: for N where numpy's `arange` yields N+1 trailing values (N = 61 of 1 … 100: a last timestep of −1),
 * we keep the first N.
 */
export function timesteps(spacing: Spacing, steps: number, opts: TimestepOptions = {}): number[] {
  const { stepsOffset = 1, trainSteps = 1000 } = opts;
  assertSteps(steps);
  if (spacing === 'leading') {
    const ratio = Math.floor(trainSteps / steps);
    return range(steps).map((k) => ratio * (steps - 1 - k) + stepsOffset);
  }
  if (spacing === 'trailing') {
    return descendingArange(trainSteps, trainSteps / steps, steps).map((t) => roundHalfEven(t) - 1);
  }
  return npLinspace(0, trainSteps - 1, steps).reverse();
}

/**
 * Timesteps of `DPMSolverMultistepScheduler` (it spaces N+1 points and drops the last; lambda_min_clipped = −∞):
 * leading (train//(N+1))·(N−k) + offset; linspace round(linspace(0, train−1, N+1)) reversed without the last;
 * trailing as `timesteps`.
 */
export function dpmTimesteps(spacing: Spacing, steps: number, opts: TimestepOptions = {}): number[] {
  const { stepsOffset = 1, trainSteps = 1000 } = opts;
  assertSteps(steps);
  if (spacing === 'leading') {
    const ratio = Math.floor(trainSteps / (steps + 1));
    return range(steps).map((k) => ratio * (steps - k) + stepsOffset);
  }
  if (spacing === 'trailing') return timesteps('trailing', steps, opts);
  return npLinspace(0, trainSteps - 1, steps + 1)
    .map(roundHalfEven)
    .reverse()
    .slice(0, steps);
}

/**
 * `LCMScheduler` timesteps: the distillation grid k·(1 … originalSteps·strength) − 1 (k = train//originalSteps),
 * reversed, sampled at floor(linspace(0, len, N, endpoint=False)). Requires N ≤ originalSteps (diffusers raises too).
 */
export function lcmTimesteps(steps: number, opts: { trainSteps?: number; originalSteps?: number } = {}): number[] {
  const { trainSteps = 1000, originalSteps = LCM_ORIGINAL_STEPS } = opts;
  assertSteps(steps);
  if (steps > originalSteps) {
    // refused at submit (contract/check-inputs.ts); reaching here is a caller's bug
    throw new AtelierError('INTERNAL', `the lcm sampler supports at most ${originalSteps} steps, got ${steps}`);
  }
  const k = Math.floor(trainSteps / originalSteps);
  const origin = range(originalSteps).map((i) => (i + 1) * k - 1).reverse();
  return npLinspace(0, origin.length, steps, false).map((x) => origin[Math.floor(x)]);
}

/** `np.interp(x, xp, fp)` for increasing xp: linear, clamped to fp's ends, slope·(x − xp_j) + fp_j */
export function interp(x: number, xp: ArrayLike<number>, fp: ArrayLike<number>): number {
  const n = xp.length;
  if (x <= xp[0]) return fp[0];
  if (x >= xp[n - 1]) return fp[n - 1];
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid] <= x) lo = mid;
    else hi = mid;
  }
  const slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo]);
  return slope * (x - xp[lo]) + fp[lo];
}

/** σ at (possibly fractional) timesteps: np.interp over the training σ's (float64, as diffusers before its cast) */
export function sigmasForTimesteps(ts: readonly number[], sigmasAllF32: Float32Array): number[] {
  const xp = range(sigmasAllF32.length);
  return ts.map((t) => interp(t, xp, sigmasAllF32));
}

/** Karras et al. (2022) eq. 5: σ_k = (σmax^(1/ρ) + k/(n−1)·(σmin^(1/ρ) − σmax^(1/ρ)))^ρ, float64, no final 0 */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/**
 * σ → fractional training timestep: linear interpolation of ln σ between the neighbouring training timesteps
 * (diffusers `_sigma_to_t`); clamped to [0, train−1].
 */
export function sigmaToTimestep(sigma: number, logSigmasF32: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const n = logSigmasF32.length;
  let low = 0; // last index with ln σ_i ≤ ln σ (0 when none), at most n − 2
  for (let i = 0; i < n; i++) if (logSigma - logSigmasF32[i] >= 0) low = i;
  low = Math.min(low, n - 2);
  const lo = logSigmasF32[low];
  const hi = logSigmasF32[low + 1];
  const w = Math.min(Math.max((lo - logSigma) / (lo - hi), 0), 1);
  return (1 - w) * low + w * (low + 1);
}

/** α_t = 1/√(σ²+1), s_t = σ·α_t, λ_t = ln α_t − ln s_t (float32 scalars, as diffusers' 0-dim tensors) */
export function vpScales(sigma: number): { alpha: number; s: number; lambda: number } {
  const alpha = fr(1 / fr(Math.sqrt(fr(fr(sigma * sigma) + 1))));
  const s = fr(sigma * alpha);
  const lambda = fr(fr(Math.log(alpha)) - fr(Math.log(s)));
  return { alpha, s, lambda };
}

export interface StrengthStart {
  /** diffusers' init_timestep = min(⌊N·strength⌋, N) */
  initTimestep: number;
  /** index of the first schedule step that runs */
  tStart: number;
  /** steps that run: N − tStart, always ≥ 1 */
  runSteps: number;
}

/**
 * img2img start (diffusers `get_timesteps`): init_timestep = min(⌊N·strength⌋, N), t_start = N − init_timestep.
 * Where diffusers would run no step at all (⌊N·strength⌋ = 0, e.g. strength 0.05 with 10 steps) we still run the
 * last one: t_start ≤ N − 1. Strength 0.05 with 25 steps: ⌊1.25⌋ = 1, so exactly one step, as in diffusers.
 */
export function strengthToStart(steps: number, strength: number): StrengthStart {
  assertSteps(steps);
  if (!(strength > 0 && strength <= 1)) {
    throw new AtelierError('INTERNAL', `strength must be in (0, 1], got ${strength}`); // an engine invariant: the contract checks it
  }
  const initTimestep = Math.min(Math.floor(steps * strength), steps);
  const tStart = Math.min(steps - initTimestep, steps - 1);
  return { initTimestep, tStart, runSteps: steps - tStart };
}

function assertSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new AtelierError('INTERNAL', `steps must be a positive integer, got ${steps}`); // an engine invariant: the contract checks it
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
