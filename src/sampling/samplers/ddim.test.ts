import { test } from 'node:test';
import { checkReplay, replayTrace, summary } from '../trace-replay.ts';

test('ddim (η = 0) replays its trace bit-exactly, drawing no noise', async (t) => {
  const r = await replayTrace('sampler_ddim_txt2img_trace', 'ddim', 'leading');
  checkReplay(r, 0);
  t.diagnostic(summary(r));
});
