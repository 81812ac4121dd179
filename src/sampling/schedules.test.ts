import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SamplerName, TimestepSpacing } from '../contract/types.ts';
import { makePlan } from './plan.ts';
import {
  alphasCumprod,
  betasScaledLinear,
  dpmTimesteps,
  interp,
  karrasSigmas,
  lcmTimesteps,
  npLinspace,
  roundHalfEven,
  sigmaToTimestep,
  logSigmas,
  sigmasAll,
  strengthToStart,
  timesteps,
} from './schedules.ts';
import { f32Bits, loadTrace } from './test-fixtures.ts';

/** every oracle trace with its sampler and spacing */
const TRACES: Array<[string, SamplerName, TimestepSpacing]> = [
  ['txt2img_trace', 'euler', 'leading'],
  ['img2img_trace', 'euler', 'leading'],
  ['ti_txt2img_trace', 'euler', 'leading'],
  ['lora_kohya_img2img_trace', 'euler', 'leading'],
  ['inpaint_trace_strength0.75', 'euler', 'leading'],
  ['sampler_euler_trailing_txt2img_trace', 'euler', 'trailing'],
  ['sampler_euler_ancestral_txt2img_trace', 'euler_ancestral', 'leading'],
  ['sampler_heun_txt2img_trace', 'heun', 'leading'],
  ['sampler_dpmpp_2m_txt2img_trace', 'dpmpp_2m', 'leading'],
  ['sampler_dpmpp_2m_karras_txt2img_trace', 'dpmpp_2m_karras', 'leading'],
  ['sampler_ddim_txt2img_trace', 'ddim', 'leading'],
  ['sampler_lcm_txt2img_trace', 'lcm', 'leading'],
];

function bitsEqual(ours: ArrayLike<number>, ref: ArrayLike<number>, what: string): void {
  assert.equal(ours.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    assert.equal(f32Bits(ours[i]), f32Bits(ref[i]), `${what}[${i}]: ${ours[i]} vs ${ref[i]}`);
  }
}

test('betas and alphas_cumprod are bit-exact (float32, torch.linspace on AVX2 + cumprod in double)', () => {
  const betas = betasScaledLinear();
  const ac = alphasCumprod(betas);
  for (const [name] of TRACES) {
    const tr = loadTrace(name);
    bitsEqual(betas, tr.get('scheduler/betas'), `${name} betas`);
    bitsEqual(ac, tr.get('scheduler/alphas_cumprod'), `${name} alphas_cumprod`);
  }
});

test('timesteps_full, sigmas_full and init_noise_sigma of every trace are bit-exact', () => {
  for (const [name, sampler, spacing] of TRACES) {
    const tr = loadTrace(name);
    const plan = makePlan({ sampler, steps: tr.json.num_inference_steps, spacing });
    // diffusers' scheduler.timesteps: one per model call (Heun repeats all but the first)
    assert.deepEqual([...plan.callTimesteps], [...tr.get('scheduler/timesteps_full')], `${name} timesteps`);
    assert.deepEqual([...plan.callTimesteps], tr.json.timesteps_full, `${name} json timesteps`);
    if (tr.has('scheduler/sigmas_full')) {
      // Heun stores σ0, σ1, σ1, …, σ(N−1), σ(N−1), 0
      const s = plan.sigmas;
      const layout = sampler === 'heun' ? [s[0], ...[...s.slice(1, -1)].flatMap((v) => [v, v]), 0] : [...s];
      bitsEqual(layout, tr.get('scheduler/sigmas_full'), `${name} sigmas`);
    }
    const initSigma = tr.has('scheduler/init_noise_sigma') ? tr.get('scheduler/init_noise_sigma')[0] : tr.json.init_noise_sigma;
    assert.equal(f32Bits(plan.initNoiseSigma), f32Bits(initSigma), `${name} init_noise_sigma`);
    if (sampler === 'ddim') {
      // set_alpha_to_one = False: below t = 0 DDIM uses ᾱ_0 (LCM records 1 there but never reads it)
      assert.equal(plan.alphasCumprod[0], tr.get('scheduler/final_alpha_cumprod')[0], `${name} final ᾱ`);
    }
  }
});

test('img2img timesteps_used and start sigma match the trace (strength 0.6 of 10 → t_start 4)', () => {
  const tr = loadTrace('img2img_trace');
  const plan = makePlan({ sampler: 'euler', steps: 10, strength: 0.6 });
  assert.equal(plan.tStart, tr.json.t_start);
  assert.deepEqual([...plan.timesteps], tr.json.timesteps_used);
  bitsEqual(plan.sigmas, tr.get('scheduler/sigmas_full').subarray(4), 'sigmas from t_start');
  assert.equal(plan.sigmas[0], tr.get('add_noise/sigma')[0]);
  assert.equal(plan.modelCalls, 6);
});

test('strengthToStart follows diffusers and always runs at least one step', () => {
  assert.deepEqual(strengthToStart(10, 0.6), { initTimestep: 6, tStart: 4, runSteps: 6 });
  assert.deepEqual(strengthToStart(25, 0.05), { initTimestep: 1, tStart: 24, runSteps: 1 });
  // diffusers would run nothing here (⌊10·0.05⌋ = 0); we run the last step
  assert.deepEqual(strengthToStart(10, 0.05), { initTimestep: 0, tStart: 9, runSteps: 1 });
  assert.deepEqual(strengthToStart(8, 1), { initTimestep: 8, tStart: 0, runSteps: 8 });
  // float product as Python computes it: 0.29·100 = 28.999999999999996 → 28
  assert.equal(strengthToStart(100, 0.29).initTimestep, 28);
  assert.throws(() => strengthToStart(10, 0), /strength/);
  assert.throws(() => strengthToStart(0, 0.5), /steps/);
});

test('spacings: leading, trailing, linspace and the DPM / LCM variants', () => {
  assert.deepEqual(timesteps('leading', 8), [876, 751, 626, 501, 376, 251, 126, 1]);
  assert.deepEqual(timesteps('trailing', 4), [999, 749, 499, 249]);
  assert.deepEqual(timesteps('trailing', 3), [999, 666, 332]);
  // numpy's arange would give 62 values (the last −1) for 61 trailing steps; we keep 61
  assert.equal(timesteps('trailing', 61).length, 61);
  assert.ok(timesteps('trailing', 61).every((t) => t >= 0));
  assert.deepEqual(timesteps('linspace', 7), [999, 832.5, 666, 499.5, 333, 166.5, 0]);
  assert.deepEqual(timesteps('linspace', 1), [0]);
  assert.deepEqual(dpmTimesteps('leading', 8), [889, 778, 667, 556, 445, 334, 223, 112]);
  assert.deepEqual(dpmTimesteps('linspace', 4), [999, 749, 500, 250]);
  assert.deepEqual(lcmTimesteps(4), [999, 759, 499, 259]);
  assert.deepEqual(lcmTimesteps(1), [999]);
  assert.throws(() => lcmTimesteps(51), /at most 50/);
});

test('numpy helpers: round half to even, linspace, interp', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4].map(roundHalfEven), [0, 2, 2, -0, -2, 2]);
  assert.deepEqual(npLinspace(0, 1, 3), [0, 0.5, 1]);
  assert.deepEqual(npLinspace(0, 50, 4, false), [0, 12.5, 25, 37.5]);
  const xp = [0, 1, 2];
  const fp = [10, 20, 40];
  assert.equal(interp(-1, xp, fp), 10);
  assert.equal(interp(0.5, xp, fp), 15);
  assert.equal(interp(1.25, xp, fp), 25);
  assert.equal(interp(2, xp, fp), 40);
  assert.equal(interp(9, xp, fp), 40);
});

test('karras sigmas and σ → timestep', () => {
  const s = sigmasAll(alphasCumprod(betasScaledLinear()));
  const ks = karrasSigmas(8, s[0], s[999]);
  assert.equal(ks.length, 8);
  assert.ok(Math.abs(ks[0] - s[999]) < 1e-12 && Math.abs(ks[7] - s[0]) < 1e-15);
  const logS = logSigmas(s);
  // training σ's map back onto their own timesteps
  for (const t of [0, 1, 250, 998, 999]) assert.ok(Math.abs(sigmaToTimestep(s[t], logS) - t) < 1e-3, `t=${t}`);
  assert.equal(sigmaToTimestep(1e-6, logS), 0);
  assert.equal(sigmaToTimestep(1e3, logS), 999);
});
