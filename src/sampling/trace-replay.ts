/**
 * Test support: replay a recorded diffusers run through our plan + sampler. The denoiser checks the model input
 * and timestep it receives against the trace and returns the recorded guided prediction; every intermediate
 * latent is compared. The generator is seeded and advanced exactly as the pipeline would.
 */
import type { SamplerName, TimestepSpacing } from '../contract/types.ts';
import { sample } from './index.ts';
import { addNoise, initialLatents, makePlan, type SamplePlan } from './plan.ts';
import { TorchGenerator } from './rng.ts';
import { loadTrace, maxAbsDiff } from './test-fixtures.ts';

export interface ReplayResult {
  plan: SamplePlan;
  /** max |ours − recorded| of the initial latents (recomputed from the seed) */
  initErr: number;
  /** per model call: max error of the model input (first CFG half) */
  inputErr: number[];
  /** per model call: |timestep − recorded| */
  timestepErr: number[];
  /** per model call: max error of the latents after the call (stepNN/latents_out) */
  latentErr: number[];
  /** max |final − recorded last latents_out| */
  finalErr: number;
  /** largest |recorded latent| (to judge the errors) */
  scale: number;
  /** the generator consumed exactly the recorded draws (state equals a fresh replay's) */
  rngInStep: boolean;
  onStepCalls: Array<[number, number]>;
}

const pad = (i: number): string => String(i).padStart(2, '0');

export async function replayTrace(traceName: string, sampler: SamplerName, spacing: TimestepSpacing): Promise<ReplayResult> {
  const tr = loadTrace(traceName);
  const j = tr.json;
  const strength: number = j.strength ?? 1;
  const plan = makePlan({ sampler, steps: j.num_inference_steps, spacing, strength });
  const rng = new TorchGenerator(j.seed);
  const numel = tr.get('step00/latents_in').length;

  // the pipeline's draws before the loop, in the recorded order
  let x: Float32Array;
  let initErr: number;
  if (tr.has('add_noise/noisy_samples')) {
    rng.randn(numel); // vae_posterior_sample
    const noise = rng.randn(numel);
    x = addNoise(plan, tr.get('add_noise/original_samples') as Float32Array, noise);
    initErr = Math.max(maxAbsDiff(x, tr.get('add_noise/noisy_samples')), maxAbsDiff(noise, tr.get('add_noise/noise')));
  } else {
    x = initialLatents(plan, rng.randn(numel));
    initErr = maxAbsDiff(x, tr.get('step00/latents_in'));
  }

  const inputErr: number[] = [];
  const timestepErr: number[] = [];
  const latentErr: number[] = [];
  const onStepCalls: Array<[number, number]> = [];
  let scale = 0;
  const out = await sample(
    plan,
    x,
    async (input, timestep, { stepIndex }) => {
      const p = `step${pad(stepIndex)}/`;
      inputErr.push(maxAbsDiff(input, tr.get(p + 'latent_model_input').subarray(0, numel)));
      timestepErr.push(Math.abs(timestep - tr.get(p + 'timestep')[0]));
      return tr.get(p + 'noise_pred_guided') as Float32Array;
    },
    {
      rng,
      onStep(done, total, latents) {
        onStepCalls.push([done, total]);
        const ref = tr.get(`step${pad(done - 1)}/latents_out`);
        for (const v of ref) scale = Math.max(scale, Math.abs(v));
        latentErr.push(maxAbsDiff(latents, ref));
      },
    },
  );
  const finalErr = maxAbsDiff(out, tr.get(`step${pad(plan.modelCalls - 1)}/latents_out`));

  const replay = new TorchGenerator(j.seed);
  for (const draw of j.rng_consumption_order as Array<{ shape: number[] }>) {
    replay.randn(draw.shape.reduce((a, b) => a * b, 1));
  }
  const a = rng.state;
  const b = replay.state;
  const rngInStep = a.next === b.next && a.left === b.left && a.mt.every((w, i) => w === b.mt[i]);
  return { plan, initErr, inputErr, timestepErr, latentErr, finalErr, scale, rngInStep, onStepCalls };
}

/** assert a replay: every error ≤ tol, timesteps exact, the generator in step, onStep once per model call */
export function checkReplay(r: ReplayResult, tol: number): void {
  const fail = (msg: string): never => {
    throw new Error(`${r.plan.sampler}: ${msg}`);
  };
  if (r.initErr > tol) fail(`initial latents off by ${r.initErr}`);
  if (r.inputErr.length !== r.plan.modelCalls) fail(`${r.inputErr.length} model calls, expected ${r.plan.modelCalls}`);
  r.timestepErr.forEach((e, i) => e === 0 || fail(`call ${i}: timestep off by ${e}`));
  r.inputErr.forEach((e, i) => e <= tol || fail(`call ${i}: model input off by ${e}`));
  r.latentErr.forEach((e, i) => e <= tol || fail(`call ${i}: latents off by ${e}`));
  if (r.finalErr > tol) fail(`final latents off by ${r.finalErr}`);
  if (!r.rngInStep) fail('generator state differs from the recorded draw sequence');
  const expected = Array.from({ length: r.plan.modelCalls }, (_, i) => [i + 1, r.plan.modelCalls]);
  if (JSON.stringify(r.onStepCalls) !== JSON.stringify(expected)) fail(`onStep calls ${JSON.stringify(r.onStepCalls)}`);
}

export function summary(r: ReplayResult): string {
  const max = (a: number[]): number => Math.max(0, ...a);
  return `${r.plan.sampler}: ${r.plan.modelCalls} calls, max err input ${max(r.inputErr)}, latents ${max(r.latentErr)}, final ${r.finalErr} (|x| ≤ ${r.scale.toFixed(1)})`;
}
