import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sample } from '../index.ts';
import { initialLatents, makePlan } from '../plan.ts';
import { TorchGenerator } from '../rng.ts';
import type { Denoiser } from './common.ts';

/**
 * Ideal denoiser for data x0 ~ N(μ, s²) per element: E[x0 | x] = (s²x + σ²μ)/(s² + σ²), returned as ε = (x − x0)/σ.
 * The sampler sees only ε for the σ-scaled input; recover x = input·√(σ² + 1).
 */
function gaussianDenoiser(mu: number, s: number): Denoiser {
  return async (input, _t, { sigma }) => {
    const c = Math.sqrt(sigma * sigma + 1);
    return input.map((v) => {
      const x = v * c;
      const x0 = (s * s * x + sigma * sigma * mu) / (s * s + sigma * sigma);
      return (x - x0) / sigma;
    });
  };
}

async function run(seed: number, steps: number, n = 4 * 64 * 64) {
  const plan = makePlan({ sampler: 'dpmpp_sde_karras', steps });
  const rng = new TorchGenerator(seed);
  const x = initialLatents(plan, rng.randn(n));
  const out = await sample(plan, x, gaussianDenoiser(0.5, 0.3), { rng });
  return { plan, out, rng };
}

function meanStd(x: Float32Array): [number, number] {
  const m = x.reduce((a, v) => a + v, 0) / x.length;
  return [m, Math.sqrt(x.reduce((a, v) => a + (v - m) ** 2, 0) / x.length)];
}

test('dpmpp_sde_karras samples the data distribution of an ideal Gaussian denoiser', async () => {
  // x0 ~ N(0.5, 0.3²): 40 steps give mean 0.4988, std 0.2997 (with independent instead of Brownian-correlated
  // noise in the two stages the std would come out near 0.26)
  const { out } = await run(5, 40);
  const [m, s] = meanStd(out);
  assert.ok(Math.abs(m - 0.5) < 0.01, `mean ${m}`);
  assert.ok(Math.abs(s / 0.3 - 1) < 0.02, `std ${s}`);
});

test('dpmpp_sde_karras plan: Karras σ over the leading range, 2N − 1 calls, midpoints between the timesteps', () => {
  const plan = makePlan({ sampler: 'dpmpp_sde_karras', steps: 6 });
  assert.equal(plan.modelCalls, 11);
  assert.equal(plan.callTimesteps.length, 11);
  assert.equal(plan.sigmas.length, 7);
  assert.equal(plan.sigmas[6], 0);
  const euler = makePlan({ sampler: 'euler', steps: 6 });
  assert.equal(plan.sigmas[0], euler.sigmas[0]); // σmax of the leading schedule
  assert.ok(Math.abs(plan.sigmas[5] - euler.sigmas[5]) < 1e-6); // σmin of the leading schedule
  assert.equal(plan.initNoiseSigma, euler.initNoiseSigma);
  const mids = plan.midTimesteps ?? [];
  assert.equal(mids.length, 5);
  for (let k = 0; k < 5; k++) assert.ok(plan.timesteps[k] > mids[k] && mids[k] > plan.timesteps[k + 1]);
  assert.deepEqual(plan.callTimesteps.slice(0, 3), [plan.timesteps[0], mids[0], plan.timesteps[1]]);
});

test('dpmpp_sde_karras is deterministic for a seed and draws 2·(N − 1) latent-sized randn', async () => {
  const a = await run(9, 5, 256);
  const b = await run(9, 5, 256);
  const c = await run(10, 5, 256);
  assert.deepEqual(a.out, b.out);
  assert.notDeepEqual(a.out, c.out);
  const replay = new TorchGenerator(9);
  for (let i = 0; i < 1 + 2 * 4; i++) replay.randn(256);
  assert.deepEqual(a.rng.state, replay.state);
});

test('dpmpp_sde_karras img2img: strength 0.5 of 10 runs 5 steps (9 calls) from σ at step 5', async () => {
  const plan = makePlan({ sampler: 'dpmpp_sde_karras', steps: 10, strength: 0.5 });
  const full = makePlan({ sampler: 'dpmpp_sde_karras', steps: 10 });
  assert.equal(plan.modelCalls, 9);
  assert.deepEqual([...plan.sigmas], [...full.sigmas.slice(5)]);
  assert.deepEqual(plan.callTimesteps, full.callTimesteps.slice(10));
});
