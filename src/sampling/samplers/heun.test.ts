import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReplay, replayTrace, summary } from '../trace-replay.ts';

test('heun replays its trace bit-exactly (5 steps = 9 model calls, last step first-order only)', async (t) => {
  const r = await replayTrace('sampler_heun_txt2img_trace', 'heun', 'leading');
  checkReplay(r, 0);
  assert.equal(r.plan.modelCalls, 9);
  t.diagnostic(summary(r));
});
