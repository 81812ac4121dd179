import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SamplerName } from '../contract/types.ts';
import { SAMPLERS, TorchGenerator, initialLatents, makePlan, sample, type Denoiser } from './index.ts';

/** ideal denoiser for x0 ≡ 0.3 (ε = x/σ at the σ-space scale; same form for VP inputs via the given σ) */
const constantX0: Denoiser = async (input, _t, { sigma }) => {
  const c = Math.sqrt(sigma * sigma + 1);
  return input.map((v) => (v * c - 0.3) / sigma);
};

const NOISY: Partial<Record<SamplerName, (calls: number) => number>> = {
  euler: (c) => c,
  euler_ancestral: (c) => c,
  lcm: (c) => c - 1,
  dpmpp_sde_karras: (c) => 2 * (c - 1),
};

test('every sampler runs a batch of 2, draws latent-sized noise in its own order, and reports every call', async () => {
  for (const sampler of Object.keys(SAMPLERS) as SamplerName[]) {
    const plan = makePlan({ sampler, steps: 6 });
    const rng = new TorchGenerator(77);
    const numel = 2 * 4 * 3 * 5; // batch 2, 3×5 latent
    const x = initialLatents(plan, rng.randn(numel));
    const before = x.slice();
    const seen: number[][] = [];
    const out = await sample(plan, x, constantX0, { rng, onStep: (d, t) => seen.push([d, t]) });
    assert.deepEqual(x, before, `${sampler}: input latents untouched`);
    assert.equal(out.length, numel);
    assert.deepEqual(seen, Array.from({ length: plan.modelCalls }, (_, i) => [i + 1, plan.modelCalls]), sampler);
    const draws = (NOISY[sampler] ?? (() => 0))(plan.timesteps.length);
    const replay = new TorchGenerator(77);
    for (let i = 0; i <= draws; i++) replay.randn(numel);
    assert.deepEqual(rng.state, replay.state, `${sampler}: ${draws} per-step draws`);
    // an exact denoiser of a constant image lands on it; DDIM (set_alpha_to_one = False) stops at the noise
    // level of t = 0 instead: √ᾱ0·x0 + √(1 − ᾱ0)·ε
    const tol = sampler === 'ddim' ? 0.1 : 1e-6;
    for (const v of out) assert.ok(Math.abs(v - 0.3) < tol, `${sampler}: ${v}`);
  }
});

test('an aborted signal stops the sampler before the next model call with CANCELLED', async () => {
  const ac = new AbortController();
  const plan = makePlan({ sampler: 'euler', steps: 8 });
  let calls = 0;
  const denoise: Denoiser = async (input, t, info) => {
    calls++;
    return constantX0(input, t, info);
  };
  const run = sample(plan, new Float32Array(16), denoise, {
    rng: new TorchGenerator(1),
    signal: ac.signal,
    onStep: (done) => done === 3 && ac.abort(),
  });
  await assert.rejects(run, { code: 'CANCELLED' });
  assert.equal(calls, 3);
});

test('a denoiser returning the wrong size is an internal error', async () => {
  const plan = makePlan({ sampler: 'ddim', steps: 2 });
  await assert.rejects(
    sample(plan, new Float32Array(16), async () => new Float32Array(8), { rng: new TorchGenerator(1) }),
    { code: 'INTERNAL' },
  );
});
