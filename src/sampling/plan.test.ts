import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SamplerName, TimestepSpacing } from '../contract/types.ts';
import { TIMESTEP_SPACINGS } from '../contract/tables.ts';
import { addNoise, initialLatents, makePlan } from './plan.ts';
import { TorchGenerator } from './rng.ts';
import { loadTrace } from './test-fixtures.ts';

const SAMPLERS: SamplerName[] = ['euler', 'euler_ancestral', 'heun', 'dpmpp_2m', 'dpmpp_2m_karras', 'dpmpp_sde_karras', 'ddim', 'lcm'];
const SPACINGS = TIMESTEP_SPACINGS;

test('every sampler × spacing × step count gives a consistent plan', () => {
  for (const sampler of SAMPLERS) {
    for (const spacing of SPACINGS) {
      for (const steps of [1, 2, 7, 25, 50, 65]) {
        if (sampler === 'lcm' && steps > 50) continue;
        for (const strength of [1, 0.5, 0.05]) {
          const p = makePlan({ sampler, steps, spacing, strength });
          const what = `${sampler}/${spacing}/${steps}/${strength}`;
          const run = p.timesteps.length;
          assert.ok(run >= 1 && run === steps - p.tStart, what);
          assert.equal(p.sigmas.length, run + 1, what);
          assert.equal(p.sigmas[run], 0, what);
          assert.equal(p.callTimesteps.length, p.modelCalls, what);
          assert.equal(p.modelCalls, sampler === 'heun' || sampler === 'dpmpp_sde_karras' ? 2 * run - 1 : run, what);
          assert.ok(p.callTimesteps.every((t) => Number.isFinite(t) && t >= 0 && t <= 999), what);
          assert.ok([...p.sigmas].every((s) => Number.isFinite(s) && s >= 0), what);
          for (let k = 1; k < run; k++) assert.ok(p.sigmas[k] <= p.sigmas[k - 1], `${what}: σ decreasing`);
          assert.ok(p.initNoiseSigma >= 1 || p.space === 'sigma', what);
          if (p.space === 'vp') assert.ok(['ddim', 'lcm', 'dpmpp_2m', 'dpmpp_2m_karras'].includes(sampler), what);
        }
      }
    }
  }
});

test('heun img2img starts on a first-order stage at σ(t_start), as diffusers with begin_index = 2·t_start', () => {
  const full = makePlan({ sampler: 'heun', steps: 10 });
  const p = makePlan({ sampler: 'heun', steps: 10, strength: 0.3 });
  assert.equal(p.tStart, 7);
  assert.deepEqual(p.callTimesteps, full.callTimesteps.slice(14));
  assert.deepEqual([...p.sigmas], [...full.sigmas.slice(7)]);
});

test('initialLatents = randn · init_noise_sigma (txt2img_trace step00/latents_in)', () => {
  const tr = loadTrace('txt2img_trace');
  const plan = makePlan({ sampler: 'euler', steps: 8 });
  assert.deepEqual(initialLatents(plan, tr.get('rng/00_t2i_prepare_latents') as Float32Array), tr.get('step00/latents_in'));
});

test('addNoise: σ-space x0 + σn (inpaint trace), VP forms for DPM and DDIM / LCM', () => {
  const tr = loadTrace('inpaint_trace_strength0.75');
  const plan = makePlan({ sampler: 'euler', steps: tr.json.num_inference_steps, strength: 0.75 });
  const x0 = tr.get('add_noise/original_samples') as Float32Array;
  const noise = tr.get('add_noise/noise') as Float32Array;
  assert.deepEqual(addNoise(plan, x0, noise), tr.get('add_noise/noisy_samples'));

  const g = new TorchGenerator(1);
  const a = g.randn(256);
  const n = g.randn(256);
  const dpm = makePlan({ sampler: 'dpmpp_2m', steps: 10, strength: 0.6 });
  const s = dpm.sigmas[0];
  const alpha = 1 / Math.sqrt(s * s + 1);
  addNoise(dpm, a, n).forEach((v, i) => assert.ok(Math.abs(v - (alpha * a[i] + s * alpha * n[i])) < 1e-5));
  for (const sampler of ['ddim', 'lcm'] as const) {
    const p = makePlan({ sampler, steps: 8, strength: 0.5 });
    const ab = p.alphasCumprod[p.timesteps[0]];
    addNoise(p, a, n).forEach((v, i) => assert.ok(Math.abs(v - (Math.sqrt(ab) * a[i] + Math.sqrt(1 - ab) * n[i])) < 1e-5));
  }
  // a later step index (inpaint's per-step re-noising of the image latents)
  const e = makePlan({ sampler: 'euler', steps: 10 });
  addNoise(e, a, n, 3).forEach((v, i) => assert.equal(v, Math.fround(a[i] + Math.fround(n[i] * e.sigmas[3]))));
  assert.throws(() => addNoise(e, a, n.subarray(1)), /noise has/);
});

test('requests the contract refuses are engine invariants here: INTERNAL with the bad value', () => {
  assert.throws(() => makePlan({ sampler: 'lcm', steps: 60 }), { code: 'INTERNAL', message: /60/ });
  assert.throws(() => makePlan({ sampler: 'nope' as SamplerName, steps: 8 }), { code: 'INTERNAL', message: /nope/ });
  assert.throws(() => makePlan({ sampler: 'euler', steps: 0 }), { code: 'INTERNAL' });
  assert.throws(() => makePlan({ sampler: 'euler', steps: 8, spacing: 'odd' as TimestepSpacing }), { message: /odd/ });
  assert.throws(() => makePlan({ sampler: 'euler', steps: 8, strength: 1.5 }), { code: 'INTERNAL', message: /1\.5/ });
});
