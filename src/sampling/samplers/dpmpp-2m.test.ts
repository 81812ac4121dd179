import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReplay, replayTrace, summary } from '../trace-replay.ts';

// The solver's float32 scalars ln α, ln s, e^(−h) come from torch's vectorised log/exp (within 1 ulp, not always
// correctly rounded) there and from correctly rounded ones here; in a few steps λ differs in its last bit (e.g.
// dpmpp_2m step 3 matches exactly with λ one ulp lower), hence a tolerance instead of bit equality.
const TOL = 1e-5;

test('dpmpp_2m replays its trace (DPM leading spacing, order 1 – 2 – … – 2 – 1)', async (t) => {
  const r = await replayTrace('sampler_dpmpp_2m_txt2img_trace', 'dpmpp_2m', 'leading');
  checkReplay(r, TOL);
  assert.deepEqual(r.plan.timesteps, [889, 778, 667, 556, 445, 334, 223, 112]);
  t.diagnostic(summary(r));
});

test('dpmpp_2m_karras replays its trace (Karras σ, rounded timesteps)', async (t) => {
  const r = await replayTrace('sampler_dpmpp_2m_karras_txt2img_trace', 'dpmpp_2m_karras', 'leading');
  checkReplay(r, TOL);
  assert.deepEqual(r.plan.timesteps, [999, 890, 746, 549, 299, 90, 12, 0]);
  t.diagnostic(summary(r));
});
