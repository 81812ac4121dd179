import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReplay, replayTrace, summary } from '../trace-replay.ts';

test('lcm replays its trace bit-exactly (4 steps, one randn per step but the last)', async (t) => {
  const r = await replayTrace('sampler_lcm_txt2img_trace', 'lcm', 'leading');
  checkReplay(r, 0);
  assert.deepEqual(r.plan.timesteps, [999, 759, 499, 259]);
  t.diagnostic(summary(r));
});
