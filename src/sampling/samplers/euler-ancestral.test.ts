import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadTrace } from '../test-fixtures.ts';
import { checkReplay, replayTrace, summary } from '../trace-replay.ts';
import { ancestralSigmas } from './euler-ancestral.ts';

test('euler_ancestral replays its trace bit-exactly, drawing one randn per step', async (t) => {
  const r = await replayTrace('sampler_euler_ancestral_txt2img_trace', 'euler_ancestral', 'leading');
  checkReplay(r, 0);
  t.diagnostic(summary(r));
});

test('σ_up / σ_down equal the recorded ones', () => {
  const tr = loadTrace('sampler_euler_ancestral_txt2img_trace');
  for (let k = 0; k < 8; k++) {
    const p = `step0${k}/`;
    const { up, down } = ancestralSigmas(tr.get(p + 'sigma')[0], tr.get(p + 'sigma_next')[0]);
    assert.equal(up, tr.get(p + 'sigma_up')[0]);
    assert.equal(down, tr.get(p + 'sigma_down')[0]);
  }
});
