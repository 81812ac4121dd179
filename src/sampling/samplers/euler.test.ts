import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReplay, replayTrace, summary } from '../trace-replay.ts';

test('euler replays txt2img_trace bit-exactly (8 steps, leading, one unused randn per step)', async (t) => {
  const r = await replayTrace('txt2img_trace', 'euler', 'leading');
  checkReplay(r, 0);
  t.diagnostic(summary(r));
});

test('euler replays img2img_trace bit-exactly (strength 0.6 → 6 of 10 steps, add_noise at σ_start)', async (t) => {
  const r = await replayTrace('img2img_trace', 'euler', 'leading');
  checkReplay(r, 0);
  assert.equal(r.plan.tStart, 4);
  t.diagnostic(summary(r));
});

test('euler replays the LoRA img2img and TI txt2img traces bit-exactly', async () => {
  checkReplay(await replayTrace('lora_peft_img2img_trace', 'euler', 'leading'), 0);
  checkReplay(await replayTrace('ti_txt2img_trace', 'euler', 'leading'), 0);
});

test('euler with trailing spacing (Lightning recipe) replays bit-exactly, no CFG', async (t) => {
  const r = await replayTrace('sampler_euler_trailing_txt2img_trace', 'euler', 'trailing');
  checkReplay(r, 0);
  assert.equal(r.plan.initNoiseSigma, Math.fround(14.614645004272461));
  t.diagnostic(summary(r));
});
